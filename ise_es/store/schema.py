"""The store's tables as SQLAlchemy Core metadata.

Migrations (migrations/versions) create and change the schema; this metadata is what the code
expects, and a test checks that the two never drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.types import UserDefinedType

__all__ = [
    "POSTGRES_ONLY",
    "XID8",
    "blobs",
    "events",
    "metadata",
    "projection_checkpoints",
    "register_postgresql_types",
    "streams",
    "work_items",
]


class XID8(UserDefinedType[str]):
    """PostgreSQL's 64-bit transaction id type (`xid8`); never read into Python."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "xid8"


def register_postgresql_types() -> None:
    """Let reflection (alembic's drift check, sa.inspect) recognise the xid8 column type.

    Called when a PostgreSQL engine is made (store/engine.py): the PostgreSQL dialect is
    imported then and not by this module, so opening a SQLite store never loads it.
    """
    from sqlalchemy.dialects import postgresql

    postgresql.base.ischema_names["xid8"] = XID8


metadata = sa.MetaData()

PositionType = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""SQLite only makes INTEGER PRIMARY KEY the rowid alias (an autoincrementing position)."""

streams = sa.Table(
    "streams",
    metadata,
    sa.Column("stream_id", sa.String(200), primary_key=True),
    sa.Column("stream_type", sa.String(64), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # A short key for the stream's events (migration 0005): events are indexed by
    # (stream_no, version), whose small entries cost an append about one index page where the
    # stream id's cost two and a half. Assigned when the head row is created.
    sa.Column("stream_no", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("stream_no", name="uq_streams_stream_no"),
    sa.Index("ix_streams_type", "stream_type", "stream_id"),
    # The head row lives in the primary key's b-tree: moving a head is one b-tree search.
    sqlite_with_rowid=False,
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("position", PositionType, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("stream_id", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("schema_version", sa.SmallInteger, nullable=False),
    sa.Column("recorded_at", sa.Float, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # The writing transaction's id, so PostgreSQL catch-up readers can wait for late commits
    # (see store/sql.py). SQLite commits in position order and leaves it NULL. On PostgreSQL the
    # migration gives it the default pg_current_xact_id() and the index (txid, position), which
    # exist only there (POSTGRES_ONLY names them for the drift check).
    sa.Column("txid", sa.BigInteger().with_variant(XID8(), "postgresql"), nullable=True),
    sa.Column("stream_no", sa.BigInteger, nullable=False),
    # Event ids are not unique store-wide (migration 0005): idempotency is checked per stream,
    # from the expected version (store/appends.py).
    sa.UniqueConstraint("stream_no", "version", name="uq_events_stream_no_version"),
)

POSTGRES_ONLY = frozenset({"ix_events_txid_position"})

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("codec", sa.String(16), nullable=False),
    sa.Column(
        "data",
        sa.LargeBinary(),
        nullable=False,  # BYTEA on PostgreSQL
    ),
)

projection_checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

work_items = sa.Table(
    "work_items",
    metadata,
    # One row per (source id, content digest): an intent or scenario in one version, with the
    # recording settings that change its result. See ise_es/store/queue.py for the states.
    sa.Column("item_id", sa.String(64), primary_key=True),
    sa.Column("source_id", sa.String(200), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("not_before", sa.Float, nullable=False),
    sa.Column("lease_token", sa.String(64), nullable=True),
    sa.Column("worker_id", sa.String(200), nullable=True),
    sa.Column("host", sa.String(200), nullable=True),
    sa.Column("pid", sa.Integer, nullable=True),
    sa.Column("leased_at", sa.Float, nullable=True),
    sa.Column("heartbeat_at", sa.Float, nullable=True),
    sa.Column("lease_expires", sa.Float, nullable=True),
    sa.Column("session_id", sa.String(200), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("enqueued_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.UniqueConstraint("source_id", "digest", name="uq_work_items_source_digest"),
    sa.Index("ix_work_items_claim", "state", "enqueued_at", "item_id"),
    sa.Index("ix_work_items_finished", "finished_at"),
)
