"""The event store in SQLite or PostgreSQL: SQLAlchemy Core for the schema and the occasional
query, bare DBAPI calls with precompiled SQL on the hot paths.

Why the hot paths bypass SQLAlchemy
    An append of ten events is about 0.25 ms of real work on SQLite (the commit's fsync is most
    of it) and one round trip plus a commit on PostgreSQL. Through SQLAlchemy the same append
    cost ~1.6 ms: pool checkout and reset, the "begin" event hook, compiling
    ``streams.update().where(...)`` anew on every call, execution contexts, parameter
    coercion, Row objects. So `append`, `read_stream`, `read_all`/`iter_all` and the blob calls
    run SQL text written once per dialect (`_sql.py`) on DBAPI connections from a small pool of
    our own (`_pool.py`), opened by `Engines.raw_connect` with the engines' exact settings.
    Schema checks, listings, `verify` and migrations stay on SQLAlchemy Core.

Appends
    One transaction per `append`: blobs (content-addressed, ON CONFLICT DO NOTHING), the stream
    head moved with a conditional UPDATE (``WHERE version = expected AND head_hash = previous``:
    a stale writer changes no row and gets ConcurrencyError, nothing written), and the events.
    SQLite: BEGIN IMMEDIATE, then those three statements (events with one executemany), COMMIT.
    PostgreSQL: all of it is one statement (data-modifying CTEs, events and blobs passed as
    arrays and unnested), run in autocommit so the statement is its own transaction: one round
    trip. The blob and event inserts select from the head CTE, so a stale head writes nothing.
    The last (version, hash) of each stream this process wrote is cached, so the common case (a
    recorder appending to its own session) needs no read before writing; the conditional
    UPDATE makes a stale cache harmless. Without an expected version the head is read (FOR
    UPDATE on PostgreSQL, inside a transaction) so that concurrent appends queue up instead of
    failing.

Idempotency
    When an append conflicts (stale version or an event id that already exists) the store looks
    the event ids up: all stored with identical content means the append already happened (a
    retry after a lost reply) and is a no-op; an id stored with other content is an error.

Catch-up reads and the PostgreSQL sequence gap
    PostgreSQL hands out `position` at INSERT time but rows become visible at COMMIT, so a
    reader remembering "the last position I saw" can skip a lower position that commits later.
    We do not serialise writers behind a table lock (that caps throughput at one writer's).
    Instead every row records its writing transaction id (xid8, column default
    ``pg_current_xact_id()``) and readers take only rows whose transaction id is below
    ``pg_snapshot_xmin(pg_current_snapshot())``: every transaction below that horizon has ended,
    so no row can ever appear there again. Readers order by (txid, position), an index range
    scan on ix_events_txid_position; a checkpoint is still a plain position, and "after
    position P" means after (txid of P, P). A reader waits behind a long-open writer rather
    than skipping it; idle_in_transaction_session_timeout bounds how long (engine.py), and
    `oldest_open_transaction_age` reports it.
    SQLite has one writer at a time and assigns rowids under the write lock, so position order
    is commit order and readers simply go by position.

Append-only is enforced by triggers (migrations/versions/0001), not only by this API.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
import zstandard

from ise_es.errors import (
    BlobNotFound,
    ConcurrencyError,
    DuplicateEventId,
    LeaseLost,
    StoreUnavailable,
)
from ise_es.events import EVENT_TYPES, Event, decode_payload, encode_checked
from ise_es.store import _sql, projection
from ise_es.store._pool import ConnectionPool
from ise_es.store.base import (
    AppendResult,
    Fence,
    NewEvent,
    StoredEvent,
    StreamInfo,
    VerifyReport,
    new_event_id,
    stream_type_of,
)
from ise_es.store.engine import Engines, connect_engines, describe_unavailable
from ise_es.store.queue import SqlWorkQueue
from ise_es.store.schema import events, streams

__all__ = ["SqlEventStore", "chain_hash", "open_store"]

Clock = Callable[[], float]
Encoded = tuple[str, str, int, bytes]
"""(event id, type tag, schema version, payload JSON) of an event about to be appended."""
BlobRow = tuple[str, int, str, bytes]
"""(digest, size, codec, stored bytes)."""

_EVENT_COLUMNS = (
    events.c.position,
    events.c.stream_id,
    events.c.version,
    events.c.event_id,
    events.c.type,
    events.c.schema_version,
    events.c.recorded_at,
    events.c.payload,
    events.c.hash,
)
_BLOB_RAW_BELOW = 128
"""Blobs smaller than this are not worth a compression frame."""
_UNCONDITIONAL_ATTEMPTS = 10
"""Tries of an append without expected version that loses the race to create its stream."""


def _driver_errors(name: str) -> tuple[type[Exception], ...]:
    """sqlite3's and psycopg's DBAPI error class `name`. Called in `except` clauses, which are
    evaluated only when an exception is on its way: psycopg is not imported for a SQLite store
    (~0.1 s of `sessions list`), and while it is not imported none of its errors can be."""
    psycopg = sys.modules.get("psycopg")
    ours: type[Exception] = getattr(sqlite3, name)
    return (ours, getattr(psycopg, name)) if psycopg is not None else (ours,)


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


def encode_events(items: Sequence[NewEvent | Event]) -> list[Encoded]:
    """Encode and check events before anything is written.

    Raises:
        InvalidEvent: an event does not match its type.
    """
    out = []
    for item in items:
        if isinstance(item, NewEvent):
            event_id, data = item.event_id, item.data
        else:
            event_id, data = new_event_id(), item
        tag, schema_version, payload = encode_checked(data)
        out.append((event_id, tag, schema_version, payload))
    return out


class _Chained:
    """An append's rows, hashed into the stream's chain, as columns."""

    __slots__ = ("event_ids", "hashes", "head_hash", "payloads", "schema_versions", "types")

    def __init__(
        self, stream_id: str, version: int, previous: str, now: float, encoded: Sequence[Encoded]
    ) -> None:
        self.event_ids: list[str] = []
        self.types: list[str] = []
        self.schema_versions: list[int] = []
        self.payloads: list[str] = []
        self.hashes: list[str] = []
        sha256 = hashlib.sha256
        # chain_hash inlined (a test checks they agree): this loop runs for every event.
        stream_part, time_part = f"\n{stream_id}\n", f"\n{now!r}\n"
        for event_id, tag, schema_version, payload in encoded:
            version += 1
            h = sha256(
                f"{previous}{stream_part}{version}\n{event_id}\n{tag}\n{schema_version}"
                f"{time_part}".encode()
            )
            h.update(payload)
            previous = h.hexdigest()
            self.hashes.append(previous)
            self.event_ids.append(event_id)
            self.types.append(tag)
            self.schema_versions.append(schema_version)
            self.payloads.append(payload.decode())
        self.head_hash = previous


class SqlEventStore:
    """An event store in SQLite or PostgreSQL. Thread-safe; use one per process."""

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = time.time,
        check_schema: bool = True,
        head_cache_size: int = 10_000,
        blob_level: int = 3,
        pool_size: int = 8,
    ) -> None:
        self.url = url
        self._engines: Engines = connect_engines(url)
        self.dialect = self._engines.dialect
        self._postgres = self.dialect == "postgresql"
        self._sql = _sql.POSTGRES if self._postgres else _sql.SQLITE
        self._pool = ConnectionPool(self._engines.raw_connect, keep=pool_size)
        self._clock = clock
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._heads_lock = threading.Lock()
        self._head_cache_size = head_cache_size
        self._blob_level = blob_level
        self._local = threading.local()
        self.queue = SqlWorkQueue(
            self._engines.write,
            self._engines.read,
            clock=clock,
            listen_connect=self._engines.raw_connect,
            raw=self._pool,
        )
        """The work queue this store owns (store/queue.py)."""
        if check_schema:
            from ise_es.store.migrate import check_at_head

            if self.dialect == "sqlite":
                path = sa.make_url(url).database or ""
                if not Path(path).exists():
                    self.close()
                    raise StoreUnavailable(
                        f"no store at {path}: create it with `ise-es db upgrade --db {url}`"
                    )

            try:
                with self._engines.read.connect() as conn:
                    check_at_head(conn)
            except sa.exc.OperationalError as e:
                self.close()
                raise describe_unavailable(url, e) from e
            except BaseException:
                self.close()
                raise

    # ------------------------------------------------------------------ writing

    def append(
        self,
        stream_id: str,
        events_: Sequence[NewEvent | Event],
        expected_version: int | None,
        *,
        blobs: Iterable[bytes] = (),
        fence: Fence | None = None,
    ) -> AppendResult:
        """See `ise_es.store.base.EventStore.append`."""
        encoded = encode_events(events_)
        blob_rows = self._blob_rows(blobs)
        if not encoded and not blob_rows:
            head = self._read_head(stream_id)
            return AppendResult(version=head[0] if head else 0, appended=0)
        for attempt in range(_UNCONDITIONAL_ATTEMPTS):
            try:
                version, head_hash = self._append_once(
                    stream_id, encoded, expected_version, blob_rows, fence
                )
            except ConcurrencyError as e:
                self._forget_head(stream_id)
                # Without an expected version only the creation of a new stream can race (an
                # existing head is locked first): the other writer created it, go again.
                if expected_version is None and attempt + 1 < _UNCONDITIONAL_ATTEMPTS:
                    continue
                return self._resolve_conflict(stream_id, encoded, e)
            except _driver_errors("IntegrityError") as e:
                self._forget_head(stream_id)
                return self._resolve_conflict(stream_id, encoded, e)
            except _driver_errors("OperationalError") as e:
                self._forget_head(stream_id)
                raise describe_unavailable(self.url, e) from e
            except BaseException:
                self._forget_head(stream_id)
                raise
            self._remember_head(stream_id, version, head_hash)
            return AppendResult(version=version, appended=len(encoded))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _append_once(
        self,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[int, str]:
        conn = self._pool.get()
        try:
            if self._postgres:
                return self._append_postgres(
                    conn, stream_id, encoded, expected_version, blob_rows, fence
                )
            return self._append_sqlite(conn, stream_id, encoded, expected_version, blob_rows, fence)
        finally:
            self._pool.put(conn)

    def _append_sqlite(
        self,
        conn: Any,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[int, str]:
        # BEGIN IMMEDIATE: take the write lock now; a deferred transaction that reads the head
        # first would fail with "database is locked" instead of waiting (engine.py).
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Under the write lock no reclaim can slip between this check and the commit.
            if fence is not None and encoded:
                self._check_fence(conn, stream_id, fence)
            head = self._append_in(conn, stream_id, encoded, expected_version, blob_rows, None)
            conn.execute("COMMIT")
        except BaseException:
            # A failed ROLLBACK must not hide the error; the pool drops a connection left in a
            # transaction.
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            raise
        return head

    def _append_postgres(
        self,
        conn: Any,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[int, str]:
        if expected_version is None or not encoded:
            # The head must be read and locked before writing: a transaction.
            with conn.transaction():
                return self._append_in(conn, stream_id, encoded, expected_version, blob_rows, fence)
        # One statement in autocommit mode is its own transaction.
        return self._append_in(conn, stream_id, encoded, expected_version, blob_rows, fence)

    def _append_in(
        self,
        conn: Any,
        stream_id: str,
        encoded: Sequence[Encoded],
        expected_version: int | None,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> tuple[int, str]:
        """Write on a DBAPI connection (inside the caller's transaction on SQLite, or a single
        statement in autocommit on PostgreSQL); returns the new (version, head hash).

        Raises:
            ConcurrencyError: the stream is not at `expected_version`; nothing was written.
        """
        sql = self._sql
        if not encoded:
            if self._postgres:
                conn.execute(sql.insert_blobs, _blob_columns(blob_rows))
            else:
                conn.executemany(sql.insert_blob, blob_rows)
            return self._select_head(conn, stream_id, lock=False) or (0, "")
        head = self._cached_head(stream_id, expected_version)
        if head is None:
            head = self._select_head(conn, stream_id, lock=expected_version is None) or (0, "")
        current, previous = head
        if expected_version is not None and current != expected_version:
            raise ConcurrencyError(
                f"stream {stream_id} is at version {current}, not the expected version "
                f"{expected_version}: another writer appended first"
            )
        now = self._clock()
        rows = _Chained(stream_id, current, previous, now, encoded)
        version = current + len(encoded)
        if self._postgres:
            written = self._write_postgres(
                conn, stream_id, current, previous, now, rows, blob_rows, fence
            )
        else:
            written = self._write_sqlite(conn, stream_id, current, previous, now, rows, blob_rows)
        if not written:
            if fence is not None:
                self._check_fence(conn, stream_id, fence)
            raise ConcurrencyError(
                f"stream {stream_id} is not at the expected version {current}: "
                "another writer appended first"
            )
        return version, rows.head_hash

    def _write_sqlite(
        self,
        conn: Any,
        stream_id: str,
        current: int,
        previous: str,
        now: float,
        rows: _Chained,
        blob_rows: Sequence[BlobRow],
    ) -> bool:
        sql = self._sql
        if blob_rows:
            conn.executemany(sql.insert_blob, blob_rows)
        version = current + len(rows.event_ids)
        if current == 0:
            moved = conn.execute(
                sql.insert_head,
                (stream_id, stream_type_of(stream_id), version, rows.head_hash, now, now),
            ).rowcount
        else:
            moved = conn.execute(
                sql.update_head, (version, rows.head_hash, now, stream_id, current, previous)
            ).rowcount
        if moved != 1:
            return False
        # One multi-row INSERT per chunk: cheaper than executemany's statement step per row.
        params = [
            value
            for row in zip(
                rows.event_ids,
                repeat(stream_id),
                range(current + 1, version + 1),
                rows.types,
                rows.schema_versions,
                repeat(now),
                rows.payloads,
                rows.hashes,
                strict=False,
            )
            for value in row
        ]
        step = _sql.SQLITE_ROWS_PER_INSERT * _sql.INSERT_WIDTH
        for start in range(0, len(params), step):
            chunk = params[start : start + step]
            conn.execute(_sql.sqlite_insert_events(len(chunk) // _sql.INSERT_WIDTH), chunk)
        return True

    def _write_postgres(
        self,
        conn: Any,
        stream_id: str,
        current: int,
        previous: str,
        now: float,
        rows: _Chained,
        blob_rows: Sequence[BlobRow],
        fence: Fence | None,
    ) -> bool:
        version = current + len(rows.event_ids)
        sep = _sql.FIELD_SEPARATOR
        packed = [
            f"{tag}{sep}{schema_version}{sep}{digest}{sep}{payload}"
            for tag, schema_version, digest, payload in zip(
                rows.types, rows.schema_versions, rows.hashes, rows.payloads, strict=True
            )
        ]
        event_params = (stream_id, current, now, rows.event_ids, packed)
        head_params: tuple[Any, ...]
        if current == 0:
            head_params = (stream_id, stream_type_of(stream_id), version, rows.head_hash, now, now)
        else:
            head_params = (version, rows.head_hash, now, stream_id, current, previous)
        key = (current == 0, bool(blob_rows))
        statement = self._sql.append[key] if fence is None else self._sql.append_fenced[key]
        if fence is not None:
            head_params = (fence.item_id, fence.token, *head_params)
        params = head_params + (_blob_columns(blob_rows) if blob_rows else ()) + event_params
        cursor = conn.execute(statement, params, prepare=True)
        return bool(cursor.rowcount == len(rows.event_ids))

    def _resolve_conflict(
        self, stream_id: str, encoded: Sequence[Encoded], error: BaseException
    ) -> AppendResult:
        """After a conflict: a repeat of a stored append is a no-op; anything else is raised."""
        ids = [e[0] for e in encoded]
        stored = {}
        # In chunks: SQLite binds one variable per id.
        for start in range(0, len(ids), _sql.SQLITE_ROWS_PER_INSERT):
            chunk = ids[start : start + _sql.SQLITE_ROWS_PER_INSERT]
            for row in self._query(self._sql.select_ids(len(chunk)), self._sql.ids_param(chunk)):
                stored[row[0]] = row
        for event_id, tag, _, payload in encoded:
            row = stored.get(event_id)
            if row is None:
                continue
            if (row[1], row[2], row[3]) != (stream_id, tag, payload.decode()):
                raise DuplicateEventId(
                    f"event id {event_id} is already stored with other content "
                    f"(stream {row[1]}, type {row[2]})"
                ) from None
        if stored and len(stored) == len(ids):
            head = self._read_head(stream_id)
            return AppendResult(version=head[0] if head else 0, appended=0)
        if stored:
            raise DuplicateEventId(
                f"{len(stored)} of {len(ids)} event ids are already stored in {stream_id}: "
                "an append is all or nothing, retry it whole"
            ) from None
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

    # ------------------------------------------------------------------ heads

    def _cached_head(self, stream_id: str, expected_version: int | None) -> tuple[int, str] | None:
        if expected_version is None:
            return None
        if expected_version == 0:
            return (0, "")
        with self._heads_lock:
            head = self._heads.get(stream_id)
        return head if head and head[0] == expected_version else None

    def _remember_head(self, stream_id: str, version: int, head_hash: str) -> None:
        with self._heads_lock:
            self._heads[stream_id] = (version, head_hash)
            self._heads.move_to_end(stream_id)
            if len(self._heads) > self._head_cache_size:
                self._heads.popitem(last=False)

    def _forget_head(self, stream_id: str) -> None:
        with self._heads_lock:
            self._heads.pop(stream_id, None)

    def _select_head(self, conn: Any, stream_id: str, *, lock: bool) -> tuple[int, str] | None:
        # SQLite's BEGIN IMMEDIATE already excludes other writers; PostgreSQL locks the row.
        statement = self._sql.select_head_for_update if lock else self._sql.select_head
        row = conn.execute(statement, (stream_id,)).fetchone()
        return (row[0], row[1]) if row else None

    def _read_head(self, stream_id: str) -> tuple[int, str] | None:
        rows = self._query(self._sql.select_head, (stream_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    # ------------------------------------------------------------------ blobs

    def _blob_rows(self, blobs: Iterable[bytes]) -> list[BlobRow]:
        """Compressed rows, one per distinct digest."""
        rows: dict[str, BlobRow] = {}
        for data in blobs:
            digest = hashlib.sha256(data).hexdigest()
            if digest in rows:
                continue
            codec, stored = "raw", data
            if len(data) >= _BLOB_RAW_BELOW:
                compressor = getattr(self._local, "zc", None)
                if compressor is None:
                    compressor = self._local.zc = zstandard.ZstdCompressor(level=self._blob_level)
                packed = compressor.compress(data)
                if len(packed) < len(data):
                    codec, stored = "zstd", packed
            rows[digest] = (digest, len(data), codec, stored)
        return list(rows.values())

    def put_blob(self, data: bytes) -> str:
        """Store bytes once under their sha256 (a no-op when already stored)."""
        rows = self._blob_rows([data])
        # One INSERT in autocommit mode is a transaction of its own on both databases (and
        # takes SQLite's write lock before reading anything, so no BEGIN IMMEDIATE is needed).
        if self._postgres:
            self._execute(self._sql.insert_blobs, _blob_columns(rows))
        else:
            self._execute(self._sql.insert_blob, rows[0])
        return rows[0][0]

    def has_blob(self, digest: str) -> bool:
        return bool(self._query(self._sql.select_blob_size, (digest,)))

    def get_blob(self, digest: str) -> bytes:
        """Raises BlobNotFound."""
        rows = self._query(self._sql.select_blob, (digest,))
        if not rows:
            raise BlobNotFound(f"no blob {digest}")
        codec, data = rows[0][0], bytes(rows[0][1])
        if codec == "zstd":
            return zstandard.ZstdDecompressor().decompress(data)
        return data

    # ------------------------------------------------------------------ reading

    def read_stream(
        self, stream_id: str, from_version: int = 1, *, to_version: int | None = None
    ) -> list[StoredEvent]:
        if to_version is None:
            rows = self._query(self._sql.read_stream, (stream_id, from_version))
        else:
            rows = self._query(self._sql.read_stream_to, (stream_id, from_version, to_version))
        return _stored(rows)

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Events after `after_position` in catch-up order (see the module docstring)."""
        statement, params = self._sql.catch_up(after_position, limit, types)
        return _stored(self._query(statement, params))

    def read_payloads(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
    ) -> list[projection.Payload]:
        """`read_all` without building StoredEvents (ise_es/store/projection.py)."""
        statement, params = self._sql.catch_up(after_position, limit, types)
        return projection.payloads(self._query(statement, params), _CURRENT_DECODERS.get)

    def iter_all(
        self, after_position: int = 0, *, batch: int = 1000, types: Sequence[str] | None = None
    ) -> Iterator[StoredEvent]:
        """Every event after `after_position` that is safe to read now, in batches."""
        while True:
            page = self.read_all(after_position, batch, types=types)
            yield from page
            if len(page) < batch:
                return
            after_position = page[-1].position

    def streams(
        self, prefix: str | None = None, *, stream_type: str | None = None
    ) -> list[StreamInfo]:
        query = sa.select(streams).order_by(streams.c.stream_id)
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(streams.c.stream_id.like(escaped + "%", escape="\\"))
        if stream_type:
            query = query.where(streams.c.stream_type == stream_type)
        with self._engines.read.connect() as conn:
            return [
                StreamInfo(
                    stream_id=r.stream_id,
                    stream_type=r.stream_type,
                    version=r.version,
                    head_hash=r.head_hash,
                    created_at=r.created_at,
                    updated_at=r.updated_at,
                )
                for r in conn.execute(query)
            ]

    def oldest_open_transaction_age(self) -> float | None:
        """Seconds the oldest open writing transaction has been running (PostgreSQL), i.e. how
        far catch-up readers may be held back; None on SQLite or when none is open."""
        if not self._postgres:
            return None
        with self._engines.read.connect() as conn:
            age = conn.execute(
                sa.text(
                    "SELECT EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)) "
                    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                )
            ).scalar()
        return float(age) if age is not None else None

    def _query(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """Rows of one read statement, on a pooled connection in autocommit mode (a statement
        is its own snapshot on both databases)."""
        try:
            conn = self._pool.get()
            try:
                if self._postgres:
                    # Binary results: the server skips formatting numbers (float8 to shortest
                    # exact text is not cheap) and the client skips parsing them.
                    cursor = conn.execute(statement, params, prepare=True, binary=True)
                    return cursor.fetchall()  # type: ignore[no-any-return]
                return conn.execute(statement, params).fetchall()  # type: ignore[no-any-return]
            finally:
                self._pool.put(conn)
        except _driver_errors("OperationalError") as e:
            raise describe_unavailable(self.url, e) from e

    def _execute(self, statement: str, params: Sequence[Any]) -> None:
        """One write statement in autocommit mode (its own transaction)."""
        try:
            conn = self._pool.get()
            try:
                conn.execute(statement, params)
            finally:
                self._pool.put(conn)
        except _driver_errors("OperationalError") as e:
            raise describe_unavailable(self.url, e) from e

    # ------------------------------------------------------------------ integrity

    def verify(self) -> VerifyReport:
        """Re-walk every stream's hash chain and check it against the stream's head."""
        problems: list[str] = []
        n_events = 0
        with self._engines.read.connect() as conn:
            heads = {
                r.stream_id: (r.version, r.head_hash)
                for r in conn.execute(
                    sa.select(streams.c.stream_id, streams.c.version, streams.c.head_hash)
                )
            }
            seen: set[str] = set()
            current: str | None = None
            expected_version, previous = 0, ""

            def close_stream() -> None:
                if current is None:
                    return
                head = heads.get(current)
                if head is None:
                    problems.append(f"stream {current}: events but no head in streams")
                elif head != (expected_version, previous):
                    problems.append(
                        f"stream {current}: head says version {head[0]}, chain ends at version "
                        f"{expected_version} (events missing or head edited)"
                    )

            rows = conn.execution_options(yield_per=5000).execute(
                sa.select(*_EVENT_COLUMNS).order_by(events.c.stream_id, events.c.version)
            )
            broken: str | None = None
            for row in rows:
                n_events += 1
                if row.stream_id != current:
                    if broken != current:
                        close_stream()
                    current, expected_version, previous = row.stream_id, 0, ""
                    seen.add(row.stream_id)
                if broken == current:
                    continue
                expected_version += 1
                if row.version != expected_version:
                    problems.append(
                        f"stream {current} version {expected_version}: missing "
                        f"(next is {row.version})"
                    )
                    broken = current
                    continue
                digest = chain_hash(
                    previous,
                    stream_id=row.stream_id,
                    version=row.version,
                    event_id=row.event_id,
                    event_type=row.type,
                    schema_version=row.schema_version,
                    recorded_at=row.recorded_at,
                    payload=row.payload.encode(),
                )
                if digest != row.hash:
                    problems.append(
                        f"stream {current} version {row.version}: hash mismatch "
                        "(the event or one before it was altered)"
                    )
                    broken = current
                    continue
                previous = digest
            if broken != current:
                close_stream()
        for stream_id in sorted(set(heads) - seen):
            problems.append(
                f"stream {stream_id}: head at version {heads[stream_id][0]} but no events"
            )
        return VerifyReport(streams=len(heads), events=n_events, problems=problems)

    # ------------------------------------------------------------------ read models

    def projection_checkpoint(self, name: str) -> int | None:
        return projection.checkpoint(self._engines.read, name)

    def write_projection(
        self,
        name: str,
        position: int,
        rows: Callable[[sa.Connection], None] | None = None,
        *,
        replace_prefix: str | None = None,
    ) -> None:
        projection.write(
            self._engines.write,
            name,
            position,
            rows,
            replace_prefix=replace_prefix,
            clock=self._clock,
        )

    def read_projection(self) -> contextlib.AbstractContextManager[sa.Connection]:
        return projection.read(self._engines.read)

    def close(self) -> None:
        self.queue.close()
        self._pool.close()
        self._engines.dispose()

    def __enter__(self) -> SqlEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _blob_columns(rows: Sequence[BlobRow]) -> tuple[list[Any], ...]:
    """Blob rows as the column arrays PostgreSQL unnests."""
    return tuple(list(column) for column in zip(*rows, strict=True)) or ([], [], [], [])


_CURRENT_DECODERS: dict[tuple[str, int], Callable[[str], Event]] = {
    (tag, cls.schema_version): msgspec.json.Decoder(cls).decode  # type: ignore[misc]
    for tag, cls in EVENT_TYPES.items()
}
"""Decoders for payloads at their type's current schema version, looked up once per row
instead of going through decode_payload's checks; anything else takes decode_payload."""


def _stored(rows: Iterable[Sequence[Any]]) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    append = out.append
    current = _CURRENT_DECODERS.get
    for (
        position,
        stream_id,
        version,
        event_id,
        tag,
        schema_version,
        recorded_at,
        payload,
        digest,
    ) in rows:
        decode = current((tag, schema_version))
        try:
            data = decode(payload) if decode else decode_payload(tag, schema_version, payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            # decode_payload raises the InvalidEvent naming the type and version.
            data = decode_payload(tag, schema_version, payload)
        append(
            StoredEvent(
                position=position,
                stream_id=stream_id,
                version=version,
                event_id=event_id,
                type=tag,
                schema_version=schema_version,
                recorded_at=recorded_at,
                data=data,
                hash=digest,
            )
        )
    return out


def open_store(url: str, **kwargs: Any) -> SqlEventStore:
    """Open an existing, migrated store.

    Raises:
        ConfigError, StoreUnavailable, SchemaOutOfDate.
    """
    return SqlEventStore(url, **kwargs)
