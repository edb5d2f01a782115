"""Checkpointed read models: the store verbs projections write through.

A read model (stats summaries, audits, the session index...) keeps its own tables in the
store's database and remembers the global position it has processed in
`projection_checkpoints`. Its rows and its checkpoint must commit together, or a crash leaves
rows ahead of, or behind, the checkpoint (the tracking-record idea of eventsourcing's
ProcessRecorder). So the store owns the transaction and the checkpoint row; the read model
only says what to write inside it (`write(conn)`), and never imports the store's schema.
SQLAlchemy and the schema are imported by the verbs that use them: `payloads` runs without them.

`SqlEventStore.projection_checkpoint`, `write_projection`, `read_projection` and
`read_payloads` delegate here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec

from ise_es.events import Event, decode_payload

if TYPE_CHECKING:
    import sqlalchemy as sa

    Write = Callable[[sa.Connection], None]

__all__ = ["Payload", "checkpoint", "payloads", "read", "write"]

Payload = tuple[int, str, int, str, Event]
"""(position, stream id, version, type, payload) of one event: what a read model's fold reads."""


def checkpoint(read_engine: sa.Engine, name: str) -> int | None:
    """The position read model `name` has processed; None when it has no checkpoint."""
    import sqlalchemy as sa

    from ise_es.store.schema import projection_checkpoints

    with read_engine.connect() as conn:
        return conn.execute(
            sa.select(projection_checkpoints.c.position).where(
                projection_checkpoints.c.name == name
            )
        ).scalar_one_or_none()


def write(
    write_engine: sa.Engine,
    name: str,
    position: int,
    rows: Write | None,
    *,
    replace_prefix: str | None = None,
    clock: Callable[[], float] = time.time,
) -> None:
    """`rows(conn)` and checkpoint `name` := `position`, in one transaction.

    With `replace_prefix`, every checkpoint whose name starts with it is deleted first (a
    rebuild also forgets the checkpoints of the model's older versions).
    """
    import sqlalchemy as sa

    from ise_es.store.schema import projection_checkpoints

    with write_engine.begin() as conn:
        if replace_prefix is not None:
            conn.execute(
                sa.delete(projection_checkpoints).where(
                    projection_checkpoints.c.name.startswith(replace_prefix, autoescape=True)
                )
            )
        if rows is not None:
            rows(conn)
        stmt = _insert(conn.dialect.name)(projection_checkpoints).values(
            name=name, position=position, updated_at=clock()
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["name"],
                set_={"position": stmt.excluded.position, "updated_at": stmt.excluded.updated_at},
            )
        )


def _insert(dialect: str) -> Callable[[sa.Table], Any]:
    """The dialect's INSERT with ON CONFLICT, imported when first used: opening a SQLite store
    must not import SQLAlchemy's PostgreSQL dialect (tests/test_startup.py)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


@contextmanager
def read(read_engine: sa.Engine) -> Iterator[sa.Connection]:
    """A read connection for the read models' own tables (one snapshot per statement)."""
    with read_engine.connect() as conn:
        yield conn


def payloads(
    rows: Iterable[Sequence[Any]],
    decoders: Callable[[tuple[str, int]], Callable[[str], Event] | None],
) -> list[Payload]:
    """Catch-up rows (the store's event columns) as `Payload`s: each payload decoded by the
    decoder of its (type, schema version) when it has one, through `decode_payload` (upcasts,
    and the InvalidEvent that names a bad payload) otherwise. No `StoredEvent` is built: read
    models need none of its other fields, and building it cost about a quarter of a read."""
    out: list[Payload] = []
    append = out.append
    for position, stream_id, version, _, tag, schema_version, _, payload, _ in rows:
        decode = decoders((tag, schema_version))
        try:
            data = decode(payload) if decode else decode_payload(tag, schema_version, payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            data = decode_payload(tag, schema_version, payload)
        append((position, stream_id, version, tag, data))
    return out
