"""What an event store is, independent of the database behind it.

Global `position` and per-stream `version` are different things: `version` counts a stream's
events gap-free from 1; `position` identifies an event store-wide and orders catch-up reads.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import msgspec

from ise_es.events import Event

if TYPE_CHECKING:
    import sqlalchemy as sa

_id_sequence = itertools.count()
_UUID7_BITS = 0x7000_8000_0000_0000_0000
"""The version (7) and variant (0b10) bits of new_event_id's UUIDv7."""
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

    Time-ordered rather than random (uuid4) so that ids sort roughly by creation, in logs and
    in any index a deployment adds (the store itself keeps none since migration 0005: random
    ids would scatter one append's events over as many index pages). With the counter, ids
    made in one process ascend within a millisecond too. Within a process the salted counter
    never repeats; across processes two ids collide only if their random salts differ by less
    than the number of ids made (and the milliseconds match). Salt plus counter instead of
    fresh random bits per id: an os.urandom call per id costs as much as the rest of the id
    together; the 128-bit integer's 16 bytes in hex cost a quarter less than %-formatting it,
    which costs half of the equivalent f-string with format specs.
    """
    n = next(_id_sequence)
    return (
        (
            time.time_ns() // 1_000_000 << 80
            | (n & 0xFFF) << 64
            | (_id_salt + n) & 0x3FFF_FFFF_FFFF_FFFF
            | _UUID7_BITS
        )
        .to_bytes(16)
        .hex()
    )


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append. Pass a stable `event_id` to make a retried append (same stream, same
    expected version) a no-op."""

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


class EventStore(Protocol):
    """The store verbs. Implementations: `ise_es.store.sql.SqlEventStore`."""

    url: str
    """What another process opens the same store with (`open_store(url)`)."""

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent | Event],
        expected_version: int | None,
        *,
        blobs: Iterable[bytes] = (),
        fence: Fence | None = None,
    ) -> AppendResult:
        """Append events to a stream, all or nothing, in one transaction.

        Args:
            expected_version: the stream's current version as the caller last saw it (0: the
                stream must not exist yet); None appends whatever the version.
            blobs: bytes the events refer to by digest, written in the same transaction.
            fence: a work-item lease the writer must still hold, checked in the same
                transaction (LeaseLost otherwise).

        Raises:
            ConcurrencyError: the stream is not at `expected_version`; nothing was written.
            DuplicateEventId: a retry (the same expected version) finds one of its event ids
                stored at its version with other content, or only some of them stored.
            InvalidEvent: an event does not match its type; nothing was written.
            LeaseLost: `fence` is no longer the item's lease; nothing was written.
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

    def read_payloads(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
        until: int | None = None,
        part: tuple[int, int] | None = None,
    ) -> list[tuple[int, str, int, str, Event]]:
        """`read_all` without the envelope: (position, stream id, version, type, payload) per
        event, same order and guarantees. Read models fold payloads and need nothing else.

        `until` stops at that event's position (a `last_position()`: the log as it was then);
        `part` = (index, count) keeps the streams whose number modulo count is index, so
        `count` readers share a log, each stream read whole by one of them."""
        ...

    def last_position(self) -> int:
        """The position of the last event a catch-up read returns now (0 for an empty log)."""
        ...

    def streams(
        self, prefix: str | None = None, *, stream_type: str | None = None
    ) -> list[StreamInfo]: ...

    def put_blob(self, data: bytes) -> str: ...

    def get_blob(self, digest: str) -> bytes:
        """Raises BlobNotFound."""
        ...

    def verify(self) -> VerifyReport: ...

    @property
    def queue(self) -> WorkQueue:
        """The work queue the store owns."""
        ...

    # Checkpointed read models (ise_es/store/projection.py). Their tables live in the store's
    # database, so a writer gets the transaction's SQLAlchemy connection; the checkpoint row
    # is the store's business.

    def projection_checkpoint(self, name: str) -> int | None:
        """The global position read model `name` has processed; None when it has none."""
        ...

    def write_projection(
        self,
        name: str,
        position: int,
        rows: Callable[[sa.Connection], None] | None = None,
        *,
        replace_prefix: str | None = None,
    ) -> None:
        """Write a read model's rows (`rows(conn)`) and move its checkpoint `name` to
        `position` in one transaction: a crash leaves both or neither.

        Args:
            replace_prefix: first delete every checkpoint whose name starts with this (a
                rebuild forgets the checkpoints of the model's older versions).
        """
        ...

    def read_projection(self) -> AbstractContextManager[sa.Connection]:
        """A read connection for the read models' own tables."""
        ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------- work queue


class Fence(msgspec.Struct, frozen=True, kw_only=True):
    """A work-item lease an append must still hold: the store checks it inside the append's
    own transaction, so a writer whose lease was reclaimed cannot write (fencing token)."""

    item_id: str
    token: str


class NewWorkItem(msgspec.Struct, frozen=True, kw_only=True):
    """Something to record: an intent or scenario in one version."""

    source_id: str
    """The intent or scenario id."""
    kind: str
    """scenario | intent | query."""
    digest: str
    """sha256 of the content plus the recording settings that change the result."""
    spec: bytes
    """What a worker on any machine needs to record it (JSON of ise_es.fleet.spec.WorkSpec)."""


class EnqueueResult(msgspec.Struct, frozen=True, kw_only=True):
    added: list[str]
    """Item ids queued now (new content, or done/failed items re-queued by `force`)."""
    unchanged: int
    """Items already queued or recorded with the same content (a no-op)."""
    superseded: list[str]
    """Session ids of older versions of items whose content changed."""
    item_ids: list[str] = []
    """The item id of every enqueued item, in the order given."""


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    host: str
    pid: int


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    """A claimed work item."""

    item_id: str
    token: str
    source_id: str
    kind: str
    spec: bytes
    attempt: int
    """The attempt this lease records (1 for the first)."""
    session_id: str
    """The session stream (`session-<id>`) this attempt records into."""
    expires: float
    failures: int = 0
    """Infrastructure failures of the item so far (the retry backoff grows with them)."""

    @property
    def fence(self) -> Fence:
        return Fence(item_id=self.item_id, token=self.token)


class ExpiredLease(msgspec.Struct, frozen=True, kw_only=True):
    item_id: str
    source_id: str
    session_id: str | None
    state: str
    """What the item became: queued (another attempt) or failed (out of attempts)."""


class WorkItemRow(msgspec.Struct, frozen=True, kw_only=True):
    """A work item as `ise-es queue` and the viewer show it."""

    item_id: str
    source_id: str
    digest: str
    kind: str
    state: str
    """queued | leased | done | failed | superseded."""
    status: str | None
    attempts: int
    failures: int
    not_before: float
    worker_id: str | None
    host: str | None
    pid: int | None
    leased_at: float | None
    heartbeat_at: float | None
    lease_expires: float | None
    session_id: str | None
    last_error: str | None
    enqueued_at: float
    finished_at: float | None


class WorkQueue(Protocol):
    """The work queue the store owns (ise_es/store/queue.py has the states and the SQL)."""

    def enqueue(self, items: Sequence[NewWorkItem], *, force: bool = False) -> EnqueueResult: ...

    def claim(
        self, worker: WorkerInfo, *, lease_seconds: float, only: Sequence[str] | None = None
    ) -> Lease | None: ...

    def renew(self, fence: Fence, *, lease_seconds: float) -> bool: ...

    def finish(
        self,
        fence: Fence,
        *,
        outcome: str,
        status: str | None,
        error: str | None = None,
        retry_after: float = 0.0,
        max_attempts: int = 3,
    ) -> str | None: ...

    def expire(self, *, max_attempts: int) -> list[ExpiredLease]: ...

    def retry(self, *, statuses: Sequence[str], item_ids: Sequence[str] | None = None) -> int: ...

    def items(
        self, *, states: Sequence[str] | None = None, item_ids: Sequence[str] | None = None
    ) -> list[WorkItemRow]: ...

    def wait_for_work(self, timeout: float) -> None: ...

    def counts(self) -> dict[tuple[str, str | None], int]: ...

    def finished_since(self, since: float) -> int: ...
