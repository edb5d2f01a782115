"""What an event store is, independent of the database behind it.

Global `position` and per-stream `version` are different things: `version` counts a stream's
events gap-free from 1; `position` identifies an event store-wide and orders catch-up reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

import msgspec

from ise_es.events import Event


def new_event_id() -> str:
    return uuid.uuid4().hex


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append. Pass a stable `event_id` to make a retried append a no-op."""

    data: Event
    event_id: str = msgspec.field(default_factory=new_event_id)


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the store holds it: envelope plus decoded payload."""

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
