"""The event store over SQLAlchemy Core, one code path for SQLite and PostgreSQL.

Appends
    One transaction per `append`: blobs first (content-addressed, ON CONFLICT DO NOTHING), then
    the stream head is moved with a conditional UPDATE (``WHERE version = expected AND head_hash
    = previous``: a stale writer changes no row and gets ConcurrencyError, nothing written), then
    all events go in with one executemany. The last (version, hash) of each stream this process
    wrote is cached so the common case (a recorder appending to its own session) needs no read
    before writing; the conditional UPDATE makes a stale cache harmless.

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
    so no row can ever appear there again. Readers order by (txid, position); a checkpoint is
    still a plain position, and "after position P" means after (txid of P, P). A reader waits
    behind a long-open writer rather than skipping it; idle_in_transaction_session_timeout bounds
    how long (engine.py), and `oldest_open_transaction_age` reports it.
    SQLite has one writer at a time and assigns rowids under the write lock, so position order
    is commit order and readers simply go by position.

Append-only is enforced by triggers (migrations/versions/0001), not only by this API.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import zstandard
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ise_es.errors import BlobNotFound, ConcurrencyError, DuplicateEventId, StoreUnavailable
from ise_es.events import Event, decode_payload, encode_checked
from ise_es.store.base import (
    AppendResult,
    NewEvent,
    StoredEvent,
    StreamInfo,
    VerifyReport,
    stream_type_of,
)
from ise_es.store.engine import Engines, connect_engines, describe_unavailable
from ise_es.store.schema import blobs, events, streams

__all__ = ["SqlEventStore", "chain_hash", "open_store"]

Clock = Callable[[], float]
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


class _Encoded:
    __slots__ = ("event_id", "payload", "schema_version", "type")

    def __init__(self, item: NewEvent | Event) -> None:
        if isinstance(item, NewEvent):
            self.event_id, data = item.event_id, item.data
        else:
            self.event_id, data = NewEvent(item).event_id, item
        self.type, self.schema_version, raw = encode_checked(data)
        self.payload = raw.decode()


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
    ) -> None:
        self.url = url
        self._engines: Engines = connect_engines(url)
        self.dialect = self._engines.dialect
        self._clock = clock
        self._heads: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._heads_lock = threading.Lock()
        self._head_cache_size = head_cache_size
        self._blob_level = blob_level
        self._local = threading.local()
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        self._insert_blob = insert(blobs).on_conflict_do_nothing(index_elements=["digest"])
        # RETURNING, not rowcount: psycopg reports no rowcount for INSERT ... ON CONFLICT here.
        self._insert_stream = (
            insert(streams)
            .on_conflict_do_nothing(index_elements=["stream_id"])
            .returning(streams.c.stream_id)
        )
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
    ) -> AppendResult:
        """See `ise_es.store.base.EventStore.append`."""
        encoded = [_Encoded(e) for e in events_]
        blob_rows = [self._blob_row(b) for b in blobs]
        if not encoded and not blob_rows:
            head = self._read_head(stream_id)
            return AppendResult(version=head[0] if head else 0, appended=0)
        try:
            with self._engines.write.begin() as conn:
                version, head_hash = self._append_in(
                    conn, stream_id, encoded, expected_version, blob_rows
                )
        except (ConcurrencyError, sa.exc.IntegrityError) as e:
            self._forget_head(stream_id)
            return self._resolve_conflict(stream_id, encoded, e)
        except sa.exc.OperationalError as e:
            self._forget_head(stream_id)
            raise describe_unavailable(self.url, e) from e
        except BaseException:
            self._forget_head(stream_id)
            raise
        self._remember_head(stream_id, version, head_hash)
        return AppendResult(version=version, appended=len(encoded))

    def _append_in(
        self,
        conn: sa.Connection,
        stream_id: str,
        encoded: Sequence[_Encoded],
        expected_version: int | None,
        blob_rows: Sequence[dict[str, Any]],
    ) -> tuple[int, str]:
        """Write inside the caller's transaction; returns the new (version, head hash)."""
        if blob_rows:
            conn.execute(self._insert_blob, blob_rows)
        if not encoded:
            head = self._select_head(conn, stream_id, lock=False)
            return head if head else (0, "")
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
        rows = []
        version, prev_hash = current, previous
        for item in encoded:
            version += 1
            prev_hash = chain_hash(
                prev_hash,
                stream_id=stream_id,
                version=version,
                event_id=item.event_id,
                event_type=item.type,
                schema_version=item.schema_version,
                recorded_at=now,
                payload=item.payload.encode(),
            )
            rows.append(
                {
                    "event_id": item.event_id,
                    "stream_id": stream_id,
                    "version": version,
                    "type": item.type,
                    "schema_version": item.schema_version,
                    "recorded_at": now,
                    "payload": item.payload,
                    "hash": prev_hash,
                }
            )
        if current == 0:
            moved = len(
                conn.execute(
                    self._insert_stream,
                    {
                        "stream_id": stream_id,
                        "stream_type": stream_type_of(stream_id),
                        "version": version,
                        "head_hash": prev_hash,
                        "created_at": now,
                        "updated_at": now,
                    },
                ).all()
            )
        else:
            moved = conn.execute(
                streams.update()
                .where(
                    streams.c.stream_id == stream_id,
                    streams.c.version == current,
                    streams.c.head_hash == previous,
                )
                .values(version=version, head_hash=prev_hash, updated_at=now)
            ).rowcount
        if moved != 1:
            raise ConcurrencyError(
                f"stream {stream_id} is not at the expected version {current}: "
                "another writer appended first"
            )
        conn.execute(events.insert(), rows)
        return version, prev_hash

    def _resolve_conflict(
        self, stream_id: str, encoded: Sequence[_Encoded], error: Exception
    ) -> AppendResult:
        """After a conflict: a repeat of a stored append is a no-op; anything else is raised."""
        ids = [e.event_id for e in encoded]
        with self._engines.read.connect() as conn:
            stored = {
                row.event_id: row
                for row in conn.execute(
                    sa.select(
                        events.c.event_id, events.c.stream_id, events.c.type, events.c.payload
                    ).where(events.c.event_id.in_(ids))
                )
            }
        for item in encoded:
            row = stored.get(item.event_id)
            if row is None:
                continue
            if (row.stream_id, row.type, row.payload) != (stream_id, item.type, item.payload):
                raise DuplicateEventId(
                    f"event id {item.event_id} is already stored with other content "
                    f"(stream {row.stream_id}, type {row.type})"
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

    def _select_head(
        self, conn: sa.Connection, stream_id: str, *, lock: bool
    ) -> tuple[int, str] | None:
        query = sa.select(streams.c.version, streams.c.head_hash).where(
            streams.c.stream_id == stream_id
        )
        if lock and self.dialect == "postgresql":
            # SQLite's BEGIN IMMEDIATE already excludes other writers.
            query = query.with_for_update()
        row = conn.execute(query).first()
        return (row.version, row.head_hash) if row else None

    def _read_head(self, stream_id: str) -> tuple[int, str] | None:
        with self._engines.read.connect() as conn:
            return self._select_head(conn, stream_id, lock=False)

    # ------------------------------------------------------------------ blobs

    def _blob_row(self, data: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(data).hexdigest()
        codec, stored = "raw", data
        if len(data) >= _BLOB_RAW_BELOW:
            compressor = getattr(self._local, "zc", None)
            if compressor is None:
                compressor = self._local.zc = zstandard.ZstdCompressor(level=self._blob_level)
            packed = compressor.compress(data)
            if len(packed) < len(data):
                codec, stored = "zstd", packed
        return {"digest": digest, "size": len(data), "codec": codec, "data": stored}

    def put_blob(self, data: bytes) -> str:
        """Store bytes once under their sha256 (a no-op when already stored)."""
        row = self._blob_row(data)
        try:
            with self._engines.write.begin() as conn:
                conn.execute(self._insert_blob, [row])
        except sa.exc.OperationalError as e:
            raise describe_unavailable(self.url, e) from e
        return str(row["digest"])

    def has_blob(self, digest: str) -> bool:
        with self._engines.read.connect() as conn:
            return (
                conn.execute(sa.select(blobs.c.size).where(blobs.c.digest == digest)).first()
                is not None
            )

    def get_blob(self, digest: str) -> bytes:
        """Raises BlobNotFound."""
        with self._engines.read.connect() as conn:
            row = conn.execute(
                sa.select(blobs.c.codec, blobs.c.data).where(blobs.c.digest == digest)
            ).first()
        if row is None:
            raise BlobNotFound(f"no blob {digest}")
        data = bytes(row.data)
        if row.codec == "zstd":
            return zstandard.ZstdDecompressor().decompress(data)
        return data

    # ------------------------------------------------------------------ reading

    def read_stream(
        self, stream_id: str, from_version: int = 1, *, to_version: int | None = None
    ) -> list[StoredEvent]:
        query = (
            sa.select(*_EVENT_COLUMNS)
            .where(events.c.stream_id == stream_id, events.c.version >= from_version)
            .order_by(events.c.version)
        )
        if to_version is not None:
            query = query.where(events.c.version <= to_version)
        with self._engines.read.connect() as conn:
            return [_stored(row) for row in conn.execute(query)]

    def read_all(
        self,
        after_position: int = 0,
        limit: int = 1000,
        *,
        types: Sequence[str] | None = None,
    ) -> list[StoredEvent]:
        """Events after `after_position` in catch-up order (see the module docstring)."""
        with self._engines.read.connect() as conn:
            return [
                _stored(row) for row in conn.execute(self._catch_up(after_position, limit, types))
            ]

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

    def _catch_up(
        self, after_position: int, limit: int, types: Sequence[str] | None
    ) -> sa.Select[Any]:
        query = sa.select(*_EVENT_COLUMNS)
        if types:
            query = query.where(events.c.type.in_(list(types)))
        if self.dialect != "postgresql":
            return (
                query.where(events.c.position > after_position)
                .order_by(events.c.position)
                .limit(limit)
            )
        query = query.where(events.c.txid < sa.func.pg_snapshot_xmin(sa.func.pg_current_snapshot()))
        if after_position > 0:
            # A checkpoint is the position of an event already read; its txid completes the cursor.
            cursor = (
                sa.select(events.c.txid)
                .where(events.c.position == after_position)
                .scalar_subquery()
            )
            query = query.where(
                sa.tuple_(events.c.txid, events.c.position) > sa.tuple_(cursor, after_position)
            )
        return query.order_by(events.c.txid, events.c.position).limit(limit)

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
        if self.dialect != "postgresql":
            return None
        with self._engines.read.connect() as conn:
            age = conn.execute(
                sa.text(
                    "SELECT EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)) "
                    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                )
            ).scalar()
        return float(age) if age is not None else None

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

    def close(self) -> None:
        self._engines.dispose()

    def __enter__(self) -> SqlEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        position=row.position,
        stream_id=row.stream_id,
        version=row.version,
        event_id=row.event_id,
        type=row.type,
        schema_version=row.schema_version,
        recorded_at=row.recorded_at,
        data=decode_payload(row.type, row.schema_version, row.payload),
        hash=row.hash,
    )


def open_store(url: str, **kwargs: Any) -> SqlEventStore:
    """Open an existing, migrated store.

    Raises:
        ConfigError, StoreUnavailable, SchemaOutOfDate.
    """
    return SqlEventStore(url, **kwargs)
