"""Fewer pages per append: streams numbered, events indexed by (stream number, version), no
global unique index on event ids; SQLite stream heads WITHOUT ROWID.

What an SQLite append of 10 events wrote to the WAL before (benchmarks/store_bench.py): 10.5
pages, against 4.1 for bare INSERTs of the same rows. The unique index on event ids was 2.4 of
them: idempotency is now checked per stream, from the expected version (ise_es/store/
appends.py), so it goes. The unique index on (stream id, version) was 2.6: its entries carried
the ~44-byte stream id, so its right-hand leaves split every few appends, and SQLite rewrites
up to three siblings and their parent at each split. Streams now get a number (`stream_no`,
assigned when the head row is created) and events carry it: the index on (stream_no, version)
has ~12-byte entries and costs ~1.5 pages. The heads table becomes WITHOUT ROWID on SQLite:
moving a head is one b-tree search instead of an index lookup plus a table lookup.

SQLite cannot add constraints or change a table to WITHOUT ROWID in place: both tables are
rebuilt (positions, i.e. rowids, copied as they are; streams numbered in creation order) and
the append-only triggers recreated. PostgreSQL gets the columns in place (a sequence numbers
the streams; the events' trigger is suspended for the one UPDATE that fills their numbers).
Downgrading restores the 0004 schema and fails if event ids are no longer unique across the
store (the same id in two streams is allowed now).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SEQUENCE = "streams_stream_no_seq"
HEAD_COLUMNS = "stream_id, stream_type, version, head_hash, created_at, updated_at"
EVENT_COLUMNS = (
    "position, event_id, stream_id, version, type, schema_version, recorded_at, payload, hash, txid"
)


def _sqlite_triggers() -> None:
    """The append-only triggers of migration 0001 (DROP TABLE drops them with the table)."""
    for operation in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER events_no_{operation.lower()} BEFORE {operation} ON events "
            f"BEGIN SELECT RAISE(ABORT, 'ise-es: events is append-only ({operation} "
            "rejected)'); END"
        )


def _streams(name: str, *, numbered: bool) -> None:
    columns = [
        sa.Column("stream_id", sa.String(200), primary_key=True),
        sa.Column("stream_type", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    ]
    if not numbered:
        op.create_table(name, *columns)
        return
    op.create_table(
        name,
        *columns,
        sa.Column("stream_no", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("stream_no", name="uq_streams_stream_no"),
        sqlite_with_rowid=False,
    )


def _events(name: str, *, numbered: bool) -> None:
    columns = [
        sa.Column("position", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("schema_version", sa.SmallInteger, nullable=False),
        sa.Column("recorded_at", sa.Float, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("txid", sa.BigInteger, nullable=True),
    ]
    if numbered:
        op.create_table(
            name,
            *columns,
            sa.Column("stream_no", sa.BigInteger, nullable=False),
            sa.UniqueConstraint("stream_no", "version", name="uq_events_stream_no_version"),
        )
    else:
        op.create_table(
            name,
            *columns,
            sa.UniqueConstraint("stream_id", "version", name="uq_events_stream_version"),
            sa.UniqueConstraint("event_id", name="uq_events_event_id"),
        )


def _swap_sqlite() -> None:
    """Replace streams and events by streams_new and events_new."""
    op.execute("DROP TABLE events")
    op.execute("DROP TABLE streams")
    op.execute("ALTER TABLE streams_new RENAME TO streams")
    op.execute("ALTER TABLE events_new RENAME TO events")
    op.create_index("ix_streams_type", "streams", ["stream_type", "stream_id"])
    _sqlite_triggers()


def _upgrade_sqlite() -> None:
    _streams("streams_new", numbered=True)
    op.execute(
        f"INSERT INTO streams_new ({HEAD_COLUMNS}, stream_no) SELECT {HEAD_COLUMNS}, "
        "row_number() OVER (ORDER BY created_at, stream_id) FROM streams"
    )
    _events("events_new", numbered=True)
    # Events of a stream without head (a damaged store: verify reports it) have no number and
    # stop the migration at the NOT NULL constraint rather than being dropped.
    op.execute(
        f"INSERT INTO events_new ({EVENT_COLUMNS}, stream_no) SELECT "
        + ", ".join(f"e.{c.strip()}" for c in EVENT_COLUMNS.split(","))
        + ", s.stream_no FROM events e LEFT JOIN streams_new s ON s.stream_id = e.stream_id "
        "ORDER BY e.position"
    )
    _swap_sqlite()


def _upgrade_postgres() -> None:
    op.execute(f"CREATE SEQUENCE {SEQUENCE}")
    op.add_column("streams", sa.Column("stream_no", sa.BigInteger, nullable=True))
    op.execute(
        f"UPDATE streams SET stream_no = n.no FROM (SELECT stream_id, nextval('{SEQUENCE}') "
        "AS no FROM (SELECT stream_id FROM streams ORDER BY created_at, stream_id) o) n "
        "WHERE streams.stream_id = n.stream_id"
    )
    op.alter_column("streams", "stream_no", nullable=False)
    op.create_unique_constraint("uq_streams_stream_no", "streams", ["stream_no"])
    op.add_column("events", sa.Column("stream_no", sa.BigInteger, nullable=True))
    op.execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
    op.execute(
        "UPDATE events SET stream_no = s.stream_no FROM streams s "
        "WHERE s.stream_id = events.stream_id"
    )
    op.execute("ALTER TABLE events ENABLE TRIGGER events_append_only")
    op.alter_column("events", "stream_no", nullable=False)
    op.create_unique_constraint("uq_events_stream_no_version", "events", ["stream_no", "version"])
    op.drop_constraint("uq_events_stream_version", "events", type_="unique")
    op.drop_constraint("uq_events_event_id", "events", type_="unique")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgres()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("uq_events_event_id", "events", ["event_id"])
        op.create_unique_constraint("uq_events_stream_version", "events", ["stream_id", "version"])
        op.drop_constraint("uq_events_stream_no_version", "events", type_="unique")
        op.drop_column("events", "stream_no")
        op.drop_constraint("uq_streams_stream_no", "streams", type_="unique")
        op.drop_column("streams", "stream_no")
        op.execute(f"DROP SEQUENCE {SEQUENCE}")
        return
    _streams("streams_new", numbered=False)
    op.execute(f"INSERT INTO streams_new ({HEAD_COLUMNS}) SELECT {HEAD_COLUMNS} FROM streams")
    _events("events_new", numbered=False)
    op.execute(
        f"INSERT INTO events_new ({EVENT_COLUMNS}) SELECT {EVENT_COLUMNS} FROM events "
        "ORDER BY position"
    )
    _swap_sqlite()
