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
    `streams` and the revision check on SQLite are raw too; `verify`, the work queue, the
    read-model verbs and migrations stay on SQLAlchemy Core, imported when first used, so a
    store that is only read (`sessions list`, `sessions show`) never imports SQLAlchemy (about
    0.3 s of start-up; tests/test_startup.py guards it).

Appends and idempotency
    store/appends.py: one transaction per append (one statement on PostgreSQL), the head moved
    by a conditional UPDATE, and idempotency checked per stream from the expected version.

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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ise_es.errors import BlobNotFound, StoreUnavailable
from ise_es.events import Event
from ise_es.store import _sql
from ise_es.store._dbapi import Raw, driver_errors
from ise_es.store._pool import ConnectionPool
from ise_es.store.appends import Appender, chain_hash, encode_events
from ise_es.store.base import AppendResult, Fence, NewEvent, StoredEvent, StreamInfo, VerifyReport
from ise_es.store.blobs import BlobRows, blob_columns, unpack
from ise_es.store.engine import (
    Engines,
    check_sqlite_file,
    connect_engines,
    describe_unavailable,
)
from ise_es.store.rows import CURRENT_DECODERS as _CURRENT_DECODERS
from ise_es.store.rows import stored_events as _stored

if TYPE_CHECKING:
    import sqlalchemy as sa

    from ise_es.store import projection
    from ise_es.store.queue import SqlWorkQueue

__all__ = ["SqlEventStore", "chain_hash", "encode_events", "open_store"]

Clock = Callable[[], float]


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
        self._engines: Engines = connect_engines(url, check_file=False)  # _check_schema does
        self.dialect = self._engines.dialect
        self._postgres = self.dialect == "postgresql"
        self._sql = _sql.POSTGRES if self._postgres else _sql.SQLITE
        self._pool = ConnectionPool(self._engines.raw_connect, keep=pool_size)
        self._clock = clock
        self._raw = Raw(self._pool, postgres=self._postgres, url=url)
        self._appender = Appender(self._raw, clock, head_cache_size=head_cache_size)
        self._blobs = BlobRows(blob_level)
        self._queue: SqlWorkQueue | None = None
        self._queue_lock = threading.Lock()
        if check_schema:
            try:
                self._check_schema()
            except BaseException:
                self.close()
                raise

    def _check_schema(self) -> None:
        """Raises StoreUnavailable (no SQLite file, unreachable) or SchemaOutOfDate."""
        from ise_es.store import migrate

        if self.dialect != "sqlite":
            import sqlalchemy as sa

            try:
                with self._engines.read.connect() as conn:
                    migrate.check_at_head(conn)
            except sa.exc.OperationalError as e:
                raise describe_unavailable(self.url, e) from e
            return
        path = self._engines.sqlite_file()
        if not Path(path).exists():
            raise StoreUnavailable(
                f"no store at {path}: create it with `ise-es db upgrade --db {self.url}`"
            )
        try:
            conn = self._pool.get()
            try:
                migrate.check_sqlite_at_head(conn)
            finally:
                self._pool.put(conn)
        except driver_errors("OperationalError") as e:
            raise describe_unavailable(self.url, e) from e
        except (StoreUnavailable, sqlite3.DatabaseError):
            # Not a database (a text file, a damaged header): the message every other entry
            # point gives, which connect_engines skipped (check_file=False) to save a connection.
            check_sqlite_file(path, self.url)
            raise

    @property
    def queue(self) -> SqlWorkQueue:
        """The work queue this store owns (store/queue.py), made when first used: it runs on
        SQLAlchemy, which a store that is only read never imports."""
        queue = self._queue
        if queue is None:
            with self._queue_lock:
                if self._queue is None:
                    from ise_es.store.queue import SqlWorkQueue

                    self._queue = SqlWorkQueue(
                        self._engines.write,
                        self._engines.read,
                        clock=self._clock,
                        listen_connect=self._engines.raw_connect,
                        raw=self._pool,
                    )
                queue = self._queue
        return queue

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
        """See `ise_es.store.base.EventStore.append` (and ise_es/store/appends.py)."""
        encoded = encode_events(events_)
        return self._appender.append(
            stream_id, encoded, expected_version, self._blobs.rows(blobs), fence
        )

    # ------------------------------------------------------------------ blobs

    def put_blob(self, data: bytes) -> str:
        """Store bytes once under their sha256 (a no-op when already stored)."""
        rows = self._blobs.rows([data])
        # One INSERT in autocommit mode is a transaction of its own on both databases (and
        # takes SQLite's write lock before reading anything, so no BEGIN IMMEDIATE is needed).
        if self._postgres:
            self._raw.execute(self._sql.insert_blobs, blob_columns(rows))
        else:
            self._raw.execute(self._sql.insert_blob, rows[0])
        return rows[0][0]

    def has_blob(self, digest: str) -> bool:
        return bool(self._query(self._sql.select_blob_size, (digest,)))

    def get_blob(self, digest: str) -> bytes:
        """Raises BlobNotFound."""
        rows = self._query(self._sql.select_blob, (digest,))
        if not rows:
            raise BlobNotFound(f"no blob {digest}")
        return unpack(rows[0][0], bytes(rows[0][1]))

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
        until: int | None = None,
        part: tuple[int, int] | None = None,
    ) -> list[projection.Payload]:
        """`read_all` without building StoredEvents (ise_es/store/projection.py)."""
        from ise_es.store import projection

        statement, params = self._sql.catch_up(after_position, limit, types, until=until, part=part)
        return projection.payloads(self._query(statement, params), _CURRENT_DECODERS.get)

    def last_position(self) -> int:
        """The position of the last event a catch-up read returns now (0: none)."""
        rows = self._query(self._sql.last_position, ())
        return int(rows[0][0]) if rows else 0

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
        mark = "%s" if self._postgres else "?"
        where, params = [], []
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(f"stream_id LIKE {mark} ESCAPE '\\'")
            params.append(escaped + "%")
        if stream_type:
            where.append(f"stream_type = {mark}")
            params.append(stream_type)
        statement = (
            "SELECT stream_id, stream_type, version, head_hash, created_at, updated_at "
            "FROM streams" + (" WHERE " + " AND ".join(where) if where else "") + " "
            "ORDER BY stream_id"
        )
        return [
            StreamInfo(
                stream_id=stream_id,
                stream_type=kind,
                version=version,
                head_hash=head_hash,
                created_at=created_at,
                updated_at=updated_at,
            )
            for stream_id, kind, version, head_hash, created_at, updated_at in self._query(
                statement, params
            )
        ]

    def oldest_open_transaction_age(self) -> float | None:
        """Seconds the oldest open writing transaction has been running (PostgreSQL), i.e. how
        far catch-up readers may be held back; None on SQLite or when none is open."""
        if not self._postgres:
            return None
        import sqlalchemy as sa

        with self._engines.read.connect() as conn:
            age = conn.execute(
                sa.text(
                    "SELECT EXTRACT(EPOCH FROM max(clock_timestamp() - xact_start)) "
                    "FROM pg_stat_activity WHERE backend_xid IS NOT NULL"
                )
            ).scalar()
        return float(age) if age is not None else None

    def _query(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """Rows of one read statement in autocommit mode (its own snapshot)."""
        return self._raw.query(statement, params)

    # ------------------------------------------------------------------ integrity

    def verify(self) -> VerifyReport:
        """Re-walk every stream's hash chain and check it against the stream's head."""
        from ise_es.store.verify import verify

        return verify(self._engines.read)

    # ------------------------------------------------------------------ read models

    def projection_checkpoint(self, name: str) -> int | None:
        from ise_es.store import projection

        return projection.checkpoint(self._engines.read, name)

    def write_projection(
        self,
        name: str,
        position: int,
        rows: Callable[[sa.Connection], None] | None = None,
        *,
        replace_prefix: str | None = None,
    ) -> None:
        from ise_es.store import projection

        projection.write(
            self._engines.write,
            name,
            position,
            rows,
            replace_prefix=replace_prefix,
            clock=self._clock,
        )

    def read_projection(self) -> contextlib.AbstractContextManager[sa.Connection]:
        from ise_es.store import projection

        return projection.read(self._engines.read)

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
        self._pool.close()
        self._engines.dispose()

    def __enter__(self) -> SqlEventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(url: str, **kwargs: Any) -> SqlEventStore:
    """Open an existing, migrated store.

    Raises:
        ConfigError, StoreUnavailable, SchemaOutOfDate.
    """
    return SqlEventStore(url, **kwargs)
