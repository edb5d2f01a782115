"""`verify`: re-walk every stream's hash chain and check it against the stream's head."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ise_es.store.appends import chain_hash
from ise_es.store.base import VerifyReport
from ise_es.store.schema import events, streams

__all__ = ["verify"]

_COLUMNS = (
    events.c.stream_id,
    events.c.version,
    events.c.event_id,
    events.c.type,
    events.c.schema_version,
    events.c.recorded_at,
    events.c.payload,
    events.c.hash,
)


class _ChainWalk:
    """Events in (stream, version) order in, problems out; a stream stops being checked at
    its first problem (everything after it would be reported too)."""

    def __init__(self, heads: dict[str, tuple[int, str]]) -> None:
        self.heads = heads
        self.problems: list[str] = []
        self.events = 0
        self.seen: set[str] = set()
        self.current: str | None = None
        self.broken: str | None = None
        self.version, self.previous = 0, ""

    def row(self, row: Any) -> None:
        self.events += 1
        if row.stream_id != self.current:
            self.close_stream()
            self.current, self.version, self.previous = row.stream_id, 0, ""
            self.seen.add(row.stream_id)
        if self.broken == self.current:
            return
        self.version += 1
        if row.version != self.version:
            self.fail(f"version {self.version}: missing (next is {row.version})")
            return
        digest = chain_hash(
            self.previous,
            stream_id=row.stream_id,
            version=row.version,
            event_id=row.event_id,
            event_type=row.type,
            schema_version=row.schema_version,
            recorded_at=row.recorded_at,
            payload=row.payload.encode(),
        )
        if digest != row.hash:
            self.fail(
                f"version {row.version}: hash mismatch (the event or one before it was altered)"
            )
            return
        self.previous = digest

    def fail(self, problem: str) -> None:
        self.problems.append(f"stream {self.current} {problem}")
        self.broken = self.current

    def close_stream(self) -> None:
        """The chain of the stream just walked must end at its head."""
        if self.current is None or self.broken == self.current:
            return
        head = self.heads.get(self.current)
        if head is None:
            self.problems.append(f"stream {self.current}: events but no head in streams")
        elif head != (self.version, self.previous):
            self.problems.append(
                f"stream {self.current}: head says version {head[0]}, chain ends at version "
                f"{self.version} (events missing or head edited)"
            )

    def report(self) -> VerifyReport:
        self.close_stream()
        for stream_id in sorted(set(self.heads) - self.seen):
            self.problems.append(
                f"stream {stream_id}: head at version {self.heads[stream_id][0]} but no events"
            )
        return VerifyReport(streams=len(self.heads), events=self.events, problems=self.problems)


def verify(read_engine: sa.Engine) -> VerifyReport:
    """See `ise_es.store.base.EventStore.verify`."""
    with read_engine.connect() as conn:
        heads = {
            r.stream_id: (r.version, r.head_hash)
            for r in conn.execute(
                sa.select(streams.c.stream_id, streams.c.version, streams.c.head_hash)
            )
        }
        walk = _ChainWalk(heads)
        rows = conn.execution_options(yield_per=5000).execute(
            sa.select(*_COLUMNS).order_by(events.c.stream_no, events.c.version)
        )
        for row in rows:
            walk.row(row)
    return walk.report()
