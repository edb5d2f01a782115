"""What an event store is, independent of the database behind it.

Global `position` and per-stream `version` are different things: `version` counts a stream's
events gap-free from 1; `position` identifies an event store-wide and orders catch-up reads.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import msgspec

from ise_es.events import Event

_id_sequence = itertools.count()
_id_salt = int.from_bytes(os.urandom(8), "big")


def _new_id_salt() -> None:
    global _id_salt
    _id_salt = int.from_bytes(os.urandom(8), "big")


# A forked child must not continue its parent's (salt, sequence) pair.
os.register_at_fork(after_in_child=_new_id_salt)


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562) as 32 hex digits: 48-bit Unix milliseconds, a 12-bit counter (the
    RFC's "fixed bit-length dedicated counter"), then 62 bits of a per-process random salt
    plus the full counter.

    Time-ordered rather than random (uuid4) because the store keeps a unique index on event
    ids: random ids scatter one append's events over as many index pages, and SQLite writes
    every page an append dirtied to the WAL before its fsync. With the counter, ids made in one
    process ascend within a millisecond too, so they land at the end of the index. Within a
    process the salted counter never repeats; across processes two ids collide only if their
    random salts differ by less than the number of ids made (and the milliseconds match).
    Salt plus counter instead of fresh random bits per id: an os.urandom call per id costs as
    much as the rest of the id together.
    """
    n = next(_id_sequence)
    return (
        f"{time.time_ns() // 1_000_000:012x}7{n & 0xFFF:03x}"
        f"{(_id_salt + n) & 0x3FFF_FFFF_FFFF_FFFF | 0x8000_0000_0000_0000:016x}"
    )


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append. Pass a stable `event_id` to make a retried append a no-op."""

    data: Event
    event_id: str = msgspec.field(default_factory=new_event_id)


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An event as the store holds it: envelope plus decoded payload.

    Not tracked by the garbage collector (gc=False): readers make thousands per page, and the
    collections they triggered cost catch-up reads about a third of their time. A frozen
    envelope around a payload cannot be part of a reference cycle unless someone puts the
    StoredEvent inside its own payload's dict.
    """

    position: int
    stream_id: str
    version: int
    event_id: str
    type: str
    schema_version: int
    recorded_at: float
    """Seconds since the epoch (UTC), from the store's injected clock."""
    data: Event
    hash: str
    """sha256 chaining this event to the previous event of its stream."""


class StreamInfo(msgspec.Struct, frozen=True, kw_only=True):
    stream_id: str
    stream_type: str
    """The stream id's prefix: session, replay, intent, persona-pool..."""
    version: int
    head_hash: str
    created_at: float
    updated_at: float


class AppendResult(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    """The stream's version after the append."""
    appended: int
    """How many events were written (0 for an idempotent repeat)."""


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    streams: int
    events: int
    problems: list[str]
    """Human-readable, first broken stream/version first; empty when everything verifies."""

    @property
    def ok(self) -> bool:
        return not self.problems


def stream_type_of(stream_id: str) -> str:
    """`session-ab12` -> `session`; `persona-pool-7` -> `persona-pool`."""
    head, sep, _ = stream_id.rpartition("-")
    return head if sep else stream_id


class BlobSink(Protocol):
    """Somewhere to put content-addressed bytes (the store; sandboxes and tools write here)."""

    def put_blob(self, data: bytes) -> str:
        """Store bytes (deduplicated) and return their sha256 hex digest."""
        ...


class EventStore(Protocol):
    """The store verbs. Implementations: `ise_es.store.sql.SqlEventStore`."""

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent | Event],
        expected_version: int | None,
        *,
        blobs: Iterable[bytes] = (),
    ) -> AppendResult:
        """Append events to a stream, all or nothing, in one transaction.

        Args:
            expected_version: the stream's current version as the caller last saw it (0: the
                stream must not exist yet); None appends whatever the version.
            blobs: bytes the events refer to by digest, written in the same transaction.

        Raises:
            ConcurrencyError: the stream is not at `expected_version`; nothing was written.
            DuplicateEventId: an event id is already stored with other content.
            InvalidEvent: an event does not match its type; nothing was written.
            StoreUnavailable: the database cannot be reached.
        """
        ...

    def read_stream(
        self, stream_id: str, from_version: int = 1, *, to_version: int | None = None
    ) -> list[StoredEvent]: ...

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Events after `after_position` in the store's catch-up order, which never skips an
        event that commits late (see `ise_es.store.sql`)."""
        ...

    def iter_all(
        self, after_position: int = 0, *, batch: int = 1000, types: Sequence[str] | None = None
    ) -> Iterator[StoredEvent]: ...

    def streams(
        self, prefix: str | None = None, *, stream_type: str | None = None
    ) -> list[StreamInfo]: ...

    def put_blob(self, data: bytes) -> str: ...

    def get_blob(self, digest: str) -> bytes:
        """Raises BlobNotFound."""
        ...

    def verify(self) -> VerifyReport: ...

    def close(self) -> None: ...
