"""Appends: encoding, the hash chain, the write on each database, and idempotency.

One transaction per append: blobs (content-addressed, ON CONFLICT DO NOTHING), the stream head
moved with a conditional UPDATE (``WHERE version = expected AND head_hash = previous``: a stale
writer changes no row and gets ConcurrencyError, nothing written), and the events.
SQLite: BEGIN IMMEDIATE, then those three statements (the events as one multi-row INSERT),
COMMIT. PostgreSQL: all of it is one statement (data-modifying CTEs, events and blobs passed as
arrays and unnested), run in autocommit so the statement is its own transaction: one round
trip. The blob and event inserts select from the head CTE, so a stale head writes nothing.
The last (version, hash) of each stream this process wrote is cached, so the common case (a
recorder appending to its own session) needs no read before writing; the conditional UPDATE
makes a stale cache harmless. Without an expected version the head is read (FOR UPDATE on
PostgreSQL, inside a transaction) so that concurrent appends queue up instead of failing.

Idempotency, per stream
    An event id is the caller's key for retrying its append; the store keeps no index of ids
    across streams (migration 0005: that index cost 2.4 of the ~10.5 WAL pages of an SQLite
    append). A retry carries the expected version its first try had, so it conflicts, and the
    store then reads the events at exactly those versions: all of them ours (same ids, same
    content) means the append already happened (a lost reply or commit acknowledgement) and
    the retry is a no-op; some of them ours, or ours with other content, is DuplicateEventId;
    none is an ordinary ConcurrencyError. An append without expected version looks its ids up
    in its stream before writing (under the write lock; it costs a scan of that stream's
    index). The same event id in two streams is two events.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ise_es.errors import ConcurrencyError, DuplicateEventId, LeaseLost
from ise_es.events import EVENT_TYPES, Event, encode_checked
from ise_es.store import _sql
from ise_es.store._dbapi import Raw, driver_errors
from ise_es.store.base import AppendResult, Fence, NewEvent, new_event_id, stream_type_of
from ise_es.store.blobs import BlobRow, blob_columns
from ise_es.store.engine import describe_unavailable

__all__ = ["Appender", "Encoded", "chain_hash", "encode_events"]

Encoded = tuple[str, str, int, bytes]
"""(event id, type tag, schema version, payload JSON) of an event about to be appended."""
_ENCODER = msgspec.json.Encoder()
Head = tuple[int, str, int]
"""(version, head hash, stream number) of a stream; the number is 0 for a stream not created
yet, and on PostgreSQL, whose append statement looks it up itself."""
_NEW_HEAD: Head = (0, "", 0)
_UNCONDITIONAL_ATTEMPTS = 10
"""Tries of an append without expected version that loses the race to create its stream."""


def chain_hash(
    previous: str,
    *,
    stream_id: str,
    version: int,
    event_id: str,
    event_type: str,
    schema_version: int,
    recorded_at: float,
    payload: bytes,
) -> str:
    """sha256 over the previous hash, the envelope and the payload bytes."""
    h = hashlib.sha256()
    h.update(
        f"{previous}\n{stream_id}\n{version}\n{event_id}\n{event_type}\n"
        f"{schema_version}\n{recorded_at!r}\n".encode()
    )
    h.update(payload)
    return h.hexdigest()


_KINDS: dict[type, tuple[str, int]] = {
    cls: (tag, cls.schema_version) for tag, cls in EVENT_TYPES.items()
}
"""Per event class: its tag and schema version (encode_checked's lookups, without its calls; a
test checks they agree)."""
_CHECK_ALL = msgspec.json.Decoder(list[Event])
"""Decodes a JSON array of payloads as the events their tags name: one call checks a batch
(Event is the union of every EVENT_TYPES class; a test checks that _KINDS covers them all)."""


def encode_events(items: Sequence[NewEvent | Event]) -> list[Encoded]:
    """Encode and check events before anything is written: the payloads are decoded back as
    their types, the check encode_checked makes (a Struct does not validate its fields on
    construction, so an int in a str field would encode fine and then fail every read). One
    decode of the batch as a JSON array does it: each element is decoded by the class its tag
    names, which is the class that encoded it.

    Raises:
        InvalidEvent: an event does not match its type.
    """
    out: list[Encoded] = []
    append = out.append
    kinds = _KINDS.get
    encode = _ENCODER.encode
    for item in items:
        if isinstance(item, NewEvent):
            event_id, data = item.event_id, item.data
        else:
            event_id, data = new_event_id(), item
        kind = kinds(type(data))
        if kind is None:  # checked by encode_checked (and again below: harmless)
            append((event_id, *encode_checked(data)))
        else:
            append((event_id, kind[0], kind[1], encode(data)))
    try:
        _CHECK_ALL.decode(b"[%b]" % b",".join([e[3] for e in out]))
    except msgspec.ValidationError:
        for item in items:  # raises the InvalidEvent naming the event's type and field
            encode_checked(item.data if isinstance(item, NewEvent) else item)
        raise AssertionError("unreachable") from None  # pragma: no cover
    return out


def chain(
    stream_id: str,
    head: Head,
    now: float,
    encoded: Sequence[Encoded],
    *,
    postgres: bool,
) -> tuple[list[Any], list[str], str]:
    """Hash an append's events into the stream's chain and lay out its rows in the same pass:
    SQLite gets the flat parameters of one multi-row INSERT (INSERT_COLUMNS order), PostgreSQL
    the event ids and the packed "type US schema_version US hash US payload" texts (_sql.py).
    Returns (rows, event ids (PostgreSQL only), the new head hash)."""
    version, previous, stream_no = head
    rows: list[Any] = []
    ids: list[str] = []
    sha256 = hashlib.sha256
    sep = _sql.FIELD_SEPARATOR
    # chain_hash inlined (a test checks they agree): this loop runs for every event.
    stream_part, time_part = f"\n{stream_id}\n", f"\n{now!r}\n"
    for event_id, tag, schema_version, payload in encoded:
        version += 1
        h = sha256(
            f"{previous}{stream_part}{version}\n{event_id}\n{tag}\n{schema_version}"
            f"{time_part}".encode()
        )
        h.update(payload)  # not concatenated: no copy of the payload
        previous = h.hexdigest()
        if postgres:
            ids.append(event_id)
            rows.append(f"{tag}{sep}{schema_version}{sep}{previous}{sep}{payload.decode()}")
        else:
            rows += (
                event_id,
                stream_id,
                version,
                tag,
                schema_version,
                now,
                payload.decode(),
                previous,
                stream_no,
            )
    return rows, ids, previous


def same_appends(stream_id: str, encoded: Sequence[Encoded], stored: dict[str, Any]) -> bool:
    """Whether `stored` (event id -> (version, event id, type, payload) rows of this stream)
    shows this append already done: True when every event is stored with identical content,
    False when none is.

    Raises:
        DuplicateEventId: an id is stored with other content, or only some ids are stored.
    """
    if not stored:
        return False
    for event_id, tag, _, payload in encoded:
        row = stored.get(event_id)
        if row is not None and (row[2], row[3]) != (tag, payload.decode()):
            raise DuplicateEventId(
                f"event id {event_id} is already stored in {stream_id} (version {row[0]}) "
                f"with other content (type {row[2]})"
            )
    if len(stored) == len(encoded):
        return True
    raise DuplicateEventId(
        f"{len(stored)} of {len(encoded)} event ids are already stored in {stream_id}: "
        "an append is all or nothing, retry it whole"
    )


class HeadCache:
    """The last (version, hash, number) this process wrote for each of the most recent streams.

    A plain dict in recency order (insertion order; `remember` re-inserts at the end, the
    oldest is evicted first). `get` takes no lock: one dict lookup is atomic under the GIL,
    and a head read while another thread replaces it is either the old or the new one, both
    of which the conditional UPDATE judges correctly. Only the compound updates are locked.
    """

    def __init__(self, size: int) -> None:
        self._heads: dict[str, Head] = {}
        self._lock = threading.Lock()
        self._size = size

    def get(self, stream_id: str, expected_version: int | None) -> Head | None:
        if expected_version is None:
            return None
        if expected_version == 0:
            return _NEW_HEAD
        head = self._heads.get(stream_id)
        return head if head is not None and head[0] == expected_version else None

    def remember(self, stream_id: str, head: Head) -> None:
        heads = self._heads
        with self._lock:
            heads.pop(stream_id, None)
            heads[stream_id] = head
            if len(heads) > self._size:
                del heads[next(iter(heads))]

    def forget(self, stream_id: str) -> None:
        with self._lock:
            self._heads.pop(stream_id, None)


class Appender:
    """The append verb of SqlEventStore, on the store's pooled DBAPI connections."""

    def __init__(
        self, raw: Raw, clock: Callable[[], float], *, head_cache_size: int = 10_000
    ) -> None:
        self._raw = raw
        self._postgres = raw.postgres
        self._sql = _sql.POSTGRES if raw.postgres else _sql.SQLITE
        self._clock = clock
        self.heads = HeadCache(head_cache_size)

    def append(
        self,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> AppendResult:
        """See `ise_es.store.base.EventStore.append`; the events are encoded already."""
        if not encoded and not blob_rows:
            head = self.read_head(stream_id)
            return AppendResult(version=head[0] if head else 0, appended=0)
        forget = self.heads.forget
        for attempt in range(_UNCONDITIONAL_ATTEMPTS):
            try:
                head, appended = self._append_once(
                    stream_id, encoded, expected_version, blob_rows, fence
                )
            except ConcurrencyError as e:
                forget(stream_id)
                # Without an expected version only the creation of a new stream can race (an
                # existing head is locked first): the other writer created it, go again.
                if expected_version is None and attempt + 1 < _UNCONDITIONAL_ATTEMPTS:
                    continue
                return self._resolve_conflict(stream_id, encoded, expected_version, e)
            except driver_errors("IntegrityError") as e:
                forget(stream_id)
                return self._resolve_conflict(stream_id, encoded, expected_version, e)
            except driver_errors("OperationalError") as e:
                forget(stream_id)
                raise describe_unavailable(self._raw.url, e) from e
            except BaseException:
                forget(stream_id)
                raise
            self.heads.remember(stream_id, head)
            return AppendResult(version=head[0], appended=appended)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _append_once(
        self,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[Head, int]:
        conn = self._raw.pool.get()
        try:
            if not self._postgres:
                return self._append_sqlite(
                    conn, stream_id, encoded, expected_version, blob_rows, fence
                )
            if expected_version is None or not encoded:
                # The head must be read and locked before writing: a transaction.
                with conn.transaction():
                    return self._append_in(
                        conn, stream_id, encoded, expected_version, blob_rows, fence
                    )
            # One statement in autocommit mode is its own transaction.
            return self._append_in(conn, stream_id, encoded, expected_version, blob_rows, fence)
        finally:
            self._raw.pool.put(conn)

    def _append_sqlite(
        self,
        conn: Any,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[Head, int]:
        # BEGIN IMMEDIATE: take the write lock now; a deferred transaction that reads the head
        # first would fail with "database is locked" instead of waiting (engine.py).
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock no reclaim can slip between this check and the commit.
            if fence is not None and encoded:
                self._check_fence(conn, stream_id, fence)
            done = self._append_in(conn, stream_id, encoded, expected_version, blob_rows, None)
            conn.execute("COMMIT")
        except BaseException:
            # A failed ROLLBACK must not hide the error; the pool drops a connection left in a
            # transaction.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise
        return done

    def _append_in(
        self,
        conn: Any,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[Head, int]:
        """Write on a DBAPI connection (inside the caller's transaction on SQLite, or a single
        statement in autocommit on PostgreSQL); returns the new head and the number of events
        written.

        Raises:
            ConcurrencyError: the stream is not at `expected_version`; nothing was written.
        """
        if not encoded:
            self._insert_blobs(conn, blob_rows)
            return self._select_head(conn, stream_id, lock=False) or (0, "", 0), 0
        head = self.heads.get(stream_id, expected_version)
        if head is None:
            head = self._select_head(conn, stream_id, lock=expected_version is None)
            head = head or (0, "", 0)
        current = head[0]
        if expected_version is None:
            if current and self._stored_in_stream(conn, stream_id, encoded):
                return head, 0
        elif current != expected_version:
            raise ConcurrencyError(
                f"stream {stream_id} is at version {current}, not the expected version "
                f"{expected_version}: another writer appended first"
            )
        if current == 0 and not self._postgres:
            head = (0, "", conn.execute(self._sql.next_stream_no).fetchone()[0])
        written = self._write(conn, stream_id, head, encoded, blob_rows, fence)
        if written is None:
            if fence is not None:
                self._check_fence(conn, stream_id, fence)
            raise ConcurrencyError(
                f"stream {stream_id} is not at the expected version {current}: "
                "another writer appended first"
            )
        return written, len(encoded)

    def _write(
        self,
        conn: Any,
        stream_id: str,
        head: Head,
        encoded: Sequence[Encoded],
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> Head | None:
        """Chain the events onto `head` and write them, the blobs and the new head; returns
        the new head, or None when the head had moved (nothing written)."""
        current, previous, stream_no = head
        now = self._clock()
        rows, ids, head_hash = chain(stream_id, head, now, encoded, postgres=self._postgres)
        version = current + len(encoded)
        head_params: tuple[Any, ...]
        if current == 0:
            head_params = (stream_id, stream_type_of(stream_id), version, head_hash, now, now)
            if not self._postgres:
                head_params += (stream_no,)
        else:
            head_params = (version, head_hash, now, stream_id, current, previous)
        if self._postgres:
            event_params = (stream_id, current, now, ids, rows)
            done = self._write_postgres(
                conn, current == 0, event_params, head_params, blob_rows, fence
            )
        else:
            done = self._write_sqlite(conn, current == 0, head_params, rows, blob_rows)
        return (version, head_hash, stream_no) if done else None

    def _insert_blobs(self, conn: Any, blob_rows: Sequence[BlobRow]) -> None:
        if self._postgres:
            conn.execute(self._sql.insert_blobs, blob_columns(blob_rows))
        else:
            conn.executemany(self._sql.insert_blob, blob_rows)

    def _write_sqlite(
        self,
        conn: Any,
        new_stream: bool,
        head_params: tuple[Any, ...],
        rows: list[Any],
        blob_rows: Sequence[BlobRow],
    ) -> bool:
        sql = self._sql
        if blob_rows:
            conn.executemany(sql.insert_blob, blob_rows)
        statement = sql.insert_head if new_stream else sql.update_head
        if conn.execute(statement, head_params).rowcount != 1:
            return False
        # One multi-row INSERT per chunk: cheaper than executemany's statement step per row.
        step = _sql.SQLITE_ROWS_PER_INSERT * _sql.INSERT_WIDTH
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step] if len(rows) > step else rows
            conn.execute(_sql.sqlite_insert_events(len(chunk) // _sql.INSERT_WIDTH), chunk)
        return True

    def _write_postgres(
        self,
        conn: Any,
        new_stream: bool,
        event_params: tuple[Any, ...],
        head_params: tuple[Any, ...],
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> bool:
        key = (new_stream, bool(blob_rows))
        statement = self._sql.append[key] if fence is None else self._sql.append_fenced[key]
        if fence is not None:
            head_params = (fence.item_id, fence.token, *head_params)
        params = head_params + (blob_columns(blob_rows) if blob_rows else ()) + event_params
        cursor = conn.execute(statement, params, prepare=True)
        return bool(cursor.rowcount == len(event_params[3]))

    def _stored_in_stream(self, conn: Any, stream_id: str, encoded: Sequence[Encoded]) -> bool:
        """For an append without expected version: whether it is stored in its stream already
        (`same_appends`), looked up on the writing connection, under the write lock."""
        ids = [e[0] for e in encoded]
        stored: dict[str, Any] = {}
        # In chunks: SQLite binds one variable per id.
        for start in range(0, len(ids), _sql.SQLITE_ROWS_PER_INSERT):
            chunk = ids[start : start + _sql.SQLITE_ROWS_PER_INSERT]
            statement = self._sql.select_ids_in_stream(len(chunk))
            for row in conn.execute(statement, (stream_id, *self._sql.ids_param(chunk))):
                stored[row[1]] = row
        return same_appends(stream_id, encoded, stored)

    def _resolve_conflict(
        self,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        error: BaseException,
    ) -> AppendResult:
        """After a conflict: a repeat of a stored append (its events at the versions it
        expected) is a no-op; anything else is raised."""
        if expected_version is not None:
            rows = self._raw.query(
                self._sql.select_versions,
                (stream_id, expected_version, expected_version + len(encoded)),
            )
            at = {row[0]: row for row in rows}
            stored = {}
            for version, (event_id, *_) in enumerate(encoded, expected_version + 1):
                row = at.get(version)
                if row is not None and row[1] == event_id:
                    stored[event_id] = row
            if same_appends(stream_id, encoded, stored):
                head = self.read_head(stream_id)
                return AppendResult(version=head[0] if head else 0, appended=0)
        if isinstance(error, ConcurrencyError):
            raise error
        raise ConcurrencyError(f"concurrent append to {stream_id}: {error}") from error

    def _check_fence(self, conn: Any, stream_id: str, fence: Fence) -> None:
        """Raises LeaseLost when the fence's token is no longer its item's."""
        if conn.execute(self._sql.fence_held, (fence.item_id, fence.token)).fetchone() is None:
            raise LeaseLost(
                f"the lease of work item {fence.item_id} is lost (reclaimed by another "
                f"worker): nothing was appended to {stream_id}"
            )

    def _select_head(self, conn: Any, stream_id: str, *, lock: bool) -> Head | None:
        # SQLite's BEGIN IMMEDIATE already excludes other writers; PostgreSQL locks the row.
        statement = self._sql.select_head_for_update if lock else self._sql.select_head
        row = conn.execute(statement, (stream_id,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def read_head(self, stream_id: str) -> Head | None:
        rows = self._raw.query(self._sql.select_head, (stream_id,))
        return (rows[0][0], rows[0][1], rows[0][2]) if rows else None
