"""Cheaper appends: no global unique index on event ids; SQLite stream heads WITHOUT ROWID.

Idempotency is now checked per stream, from the expected version (ise_es/store/appends.py):
a retried append finds its own event ids at the versions it was meant for. The global unique
index on event_id cost 2.4 of the ~10.5 WAL pages an SQLite append wrote (benchmarks/
store_bench.py). On SQLite the heads table becomes WITHOUT ROWID: the head row lives in its
primary-key b-tree, so moving a head is one b-tree search instead of an index lookup plus a
table lookup, and a new stream writes one b-tree fewer.

SQLite cannot drop a table constraint or change a table to WITHOUT ROWID in place: both tables
are rebuilt from their own stored DDL (positions, i.e. rowids, are copied as they are) and the
append-only triggers recreated. Downgrading restores the unique index and fails if event ids
are no longer unique across the store (the same id in two streams is allowed now).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

EVENT_ID_CONSTRAINT = "CONSTRAINT uq_events_event_id UNIQUE (event_id)"
WITHOUT_ROWID = " WITHOUT ROWID"


def _sqlite_triggers(table: str) -> list[str]:
    """The append-only triggers of migration 0001 (DROP TABLE drops them with the table)."""
    return [
        f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'ise-es: {table} is append-only ({operation} rejected)'); END"
        for operation in ("UPDATE", "DELETE")
    ]


def _rebuild_sqlite(table: str, new_ddl: str, indexes: list[str], triggers: list[str]) -> None:
    """Replace `table` by one made with `new_ddl` (written for a table named `<table>_new`),
    keeping every row, then recreate its indexes and triggers."""
    op.execute(new_ddl)
    op.execute(f"INSERT INTO {table}_new SELECT * FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
    for statement in indexes + triggers:
        op.execute(statement)


def _ddl(table: str) -> tuple[str, list[str]]:
    """The table's CREATE TABLE (renamed to `<table>_new`) and its explicit indexes' DDL."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(
            "SELECT type, sql FROM sqlite_schema WHERE tbl_name = :t AND sql IS NOT NULL "
            "AND type IN ('table', 'index')"
        ),
        {"t": table},
    ).all()
    (create,) = [sql for kind, sql in rows if kind == "table"]
    # A table renamed by ALTER TABLE has its name quoted in the stored DDL.
    renamed = _edit(create, rf'^CREATE TABLE "?{table}"? ', f"CREATE TABLE {table}_new ")
    return renamed, [sql for kind, sql in rows if kind == "index"]


def _edit(ddl: str, pattern: str, new: str) -> str:
    edited, n = re.subn(pattern, new, ddl, count=1)
    if n != 1:
        raise RuntimeError(f"cannot find {pattern!r} in {ddl[:300]}")
    return edited


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("uq_events_event_id", "events", type_="unique")
        return
    events_ddl, events_indexes = _ddl("events")
    _rebuild_sqlite(
        "events",
        _edit(events_ddl, r",\s*" + re.escape(EVENT_ID_CONSTRAINT), ""),
        events_indexes,
        _sqlite_triggers("events"),
    )
    streams_ddl, streams_indexes = _ddl("streams")
    _rebuild_sqlite("streams", streams_ddl.rstrip() + WITHOUT_ROWID, streams_indexes, [])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("uq_events_event_id", "events", ["event_id"])
        return
    streams_ddl, streams_indexes = _ddl("streams")
    _rebuild_sqlite(
        "streams", _edit(streams_ddl, re.escape(WITHOUT_ROWID) + r"\s*$", ""), streams_indexes, []
    )
    events_ddl, events_indexes = _ddl("events")
    _rebuild_sqlite(
        "events",
        _edit(events_ddl, r"\s*\)\s*$", f", \n\t{EVENT_ID_CONSTRAINT}\n)"),
        events_indexes,
        _sqlite_triggers("events"),
    )
