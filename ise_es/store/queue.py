"""The work queue, a table the store owns: what to record, who records it, how it ended.

States of a work item (one row per source id and content digest):

    queued --claim--> leased --finish(done)--> done(status)
      ^                 |  \\--finish(retry)--> queued (backoff) or failed (out of attempts)
      |                 \\--lease expired, reclaimed--> queued or failed
      \\---- retry / enqueue --force ----- done | failed
    any version --newer content enqueued--> superseded

Claims are one UPDATE whose target row comes from a sub-select: ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL (concurrent claimers skip each other's candidate rows instead of queueing behind
them, the standard queue pattern) and, on SQLite, the write transaction's BEGIN IMMEDIATE (one
writer at a time, so the select and the update cannot interleave with another claim).

Fencing: a lease has a random token. Appends to the session a lease guards carry it
(`Fence`), and the event store checks it inside the append's own transaction
(store/sql.py), so a worker that was paused or cut off past its lease cannot write once
another worker reclaimed the item: reclaiming clears the token in a transaction that locks
the item row, and the append's check takes a share lock on that same row (PostgreSQL) or runs
under the same single-writer lock (SQLite). Lease times use the store's clock: machines need
roughly synchronised clocks (NTP), far tighter than a lease of tens of seconds.

Reconciliation with the log: reclaiming an expired lease reads the session's SessionEnded in
the same transaction; a session that did end with a model outcome (its worker died between
the last append and the release) marks the item done instead of recording it again.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from ise_es.errors import StoreUnavailable
from ise_es.events import SessionEnded, decode_payload
from ise_es.store.base import (
    EnqueueResult,
    ExpiredLease,
    Fence,
    Lease,
    NewWorkItem,
    WorkerInfo,
    WorkItemRow,
)
from ise_es.store.schema import events, work_items

__all__ = ["SqlWorkQueue"]

Clock = Callable[[], float]
wi = work_items

_CHANNEL = "ise_es_work"
_CHUNK = 500
"""Ids per IN (...) list (SQLite binds one variable per id)."""
_ROW_COLUMNS = [c for c in wi.c if c.name not in ("spec", "lease_token")]


class SqlWorkQueue:
    """The work queue of one store (SQLite or PostgreSQL), on the store's engines."""

    def __init__(
        self,
        write: sa.Engine,
        read: sa.Engine,
        *,
        clock: Clock = time.time,
        listen_connect: Callable[[], Any] | None = None,
        raw: Any = None,
    ) -> None:
        self._write = write
        self._read = read
        self._clock = clock
        self._postgres = write.dialect.name == "postgresql"
        self._listen_connect = listen_connect
        self._raw = raw
        """The store's pool of DBAPI connections (get/put), for the hot statements."""
        self._sql = _QueueSql("%s" if self._postgres else "?", postgres=self._postgres)
        self._autocommit = (
            write.execution_options(isolation_level="AUTOCOMMIT") if self._postgres else None
        )
        self._listener: Any = None
        self._listener_lock = threading.Lock()

    # ------------------------------------------------------------------ enqueue

    def enqueue(self, items: Sequence[NewWorkItem], *, force: bool = False) -> EnqueueResult:
        """Queue items; the same (source id, digest) again is a no-op unless `force` re-queues
        a done or failed one. New content for a known source id supersedes its older versions
        (their sessions stay in the log; exports leave them out)."""
        added: list[str] = []
        item_ids: list[str] = []
        superseded: list[str] = []
        unchanged = 0
        now = self._clock()
        with self._write.begin() as conn:
            known = self._rows_by_source(conn, sorted({i.source_id for i in items}))
            inserts: list[dict[str, Any]] = []
            for item in items:
                versions = known.setdefault(item.source_id, [])
                same = next((r for r in versions if r["digest"] == item.digest), None)
                if same is not None:
                    item_ids.append(same["item_id"])
                    if force and same["state"] in ("done", "failed"):
                        self._requeue(conn, same["item_id"], now)
                        added.append(same["item_id"])
                    else:
                        unchanged += 1
                    continue
                placeholder = next((r for r in versions if r["digest"] == ""), None)
                if placeholder is not None:
                    item_ids.append(placeholder["item_id"])
                    adopted = self._adopt(conn, placeholder, item, now, force=force)
                    added += adopted
                    unchanged += not adopted
                    placeholder["digest"] = item.digest
                    continue
                for row in versions:
                    if row["state"] != "superseded":
                        conn.execute(
                            wi.update()
                            .where(wi.c.item_id == row["item_id"])
                            .values(state="superseded")
                        )
                        row["state"] = "superseded"
                        if row["session_id"]:
                            superseded.append(row["session_id"])
                # Distinct enqueue times keep claims in the order items were given.
                row = _new_row(item, now, order=len(inserts))
                inserts.append(row)
                versions.append(row)
                added.append(row["item_id"])
                item_ids.append(row["item_id"])
            if inserts:
                conn.execute(wi.insert(), inserts)
            if added:
                self._notify(conn)
        return EnqueueResult(
            added=added, unchanged=unchanged, superseded=superseded, item_ids=item_ids
        )

    def _rows_by_source(
        self, conn: sa.Connection, source_ids: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(source_ids), _CHUNK):
            chunk = source_ids[start : start + _CHUNK]
            query = sa.select(
                wi.c.item_id, wi.c.source_id, wi.c.digest, wi.c.state, wi.c.session_id
            ).where(wi.c.source_id.in_(chunk))
            for r in conn.execute(query):
                rows.setdefault(r.source_id, []).append(dict(r._mapping))
        return rows

    def _requeue(self, conn: sa.Connection, item_id: str, now: float) -> None:
        conn.execute(
            wi.update()
            .where(wi.c.item_id == item_id)
            .values(state="queued", failures=0, not_before=now, finished_at=None)
        )

    def _adopt(
        self,
        conn: sa.Connection,
        placeholder: dict[str, Any],
        item: NewWorkItem,
        now: float,
        *,
        force: bool,
    ) -> list[str]:
        """An item backfilled from sessions recorded before the queue existed takes the first
        content enqueued for its id; it is recorded only if it never ended (or with force)."""
        values: dict[str, Any] = {"digest": item.digest, "kind": item.kind, "spec": item.spec}
        record = placeholder["state"] == "failed" or (force and placeholder["state"] == "done")
        if record:
            values.update(state="queued", failures=0, not_before=now, finished_at=None)
        conn.execute(wi.update().where(wi.c.item_id == placeholder["item_id"]).values(**values))
        # A placeholder still leased holds a session that never ended: the next reclaim closes
        # it and queues the item, now with this content.
        return [placeholder["item_id"]] if record or placeholder["state"] == "leased" else []

    # ------------------------------------------------------------------ leases

    def claim(
        self, worker: WorkerInfo, *, lease_seconds: float, only: Sequence[str] | None = None
    ) -> Lease | None:
        """Lease the oldest queued item that is due (of `only`, when given), or None."""
        now = self._clock()
        token, session_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        sql = self._sql
        params: list[Any] = [token, worker.worker_id, worker.host, worker.pid, now, now]
        params += [now + lease_seconds, session_id, now]
        if only is None:
            statement = sql.claim
        else:
            ids = list(only)
            statement = sql.claim_only(len(ids))
            params += [ids] if self._postgres else ids
        row = self._raw_one(statement, params)
        if row is None:
            return None
        item_id, source_id, kind, spec, attempts, failures = row
        return Lease(
            item_id=item_id,
            token=token,
            source_id=source_id,
            kind=kind,
            spec=spec.encode() if isinstance(spec, str) else bytes(spec),
            attempt=attempts,
            session_id=session_id,
            expires=now + lease_seconds,
            failures=failures,
        )

    def renew(self, fence: Fence, *, lease_seconds: float) -> bool:
        """Heartbeat: extend a lease still held; False when it was lost."""
        now = self._clock()
        params = (now, now + lease_seconds, fence.item_id, fence.token)
        return self._raw_one(self._sql.renew, params) is not None

    def finish(
        self,
        fence: Fence,
        *,
        outcome: str,
        status: str | None,
        error: str | None = None,
        retry_after: float = 0.0,
        max_attempts: int = 3,
    ) -> str | None:
        """Release a lease. `outcome` done ends the item; release puts it back as it was (its
        worker stopped); retry counts an infrastructure failure and queues it again after
        `retry_after` seconds, or fails it once it has failed `max_attempts` times. Returns the
        item's new state, or None when the lease was lost."""
        now = self._clock()
        sql = self._sql
        tail = (fence.item_id, fence.token)
        if outcome == "done":
            row = self._raw_one(sql.finish_done, (status, now, *tail))
        elif outcome == "release":  # stopped by its worker (drain, Ctrl-C): not a failure
            row = self._raw_one(sql.finish_release, (status, now, error, *tail))
        elif outcome == "retry":
            params = (max_attempts, status, now + retry_after, max_attempts, now, error, *tail)
            row = self._raw_one(sql.finish_retry, params)
        else:
            raise ValueError(f"unknown outcome {outcome!r}")
        if row is None:
            return None
        if row[0] == "queued" and self._postgres:
            self._raw_one(sql.notify, ())
        return str(row[0])

    def expire(self, *, max_attempts: int) -> list[ExpiredLease]:
        """Reclaim every lease past its expiry. Each item is settled in its own transaction
        that revokes the token first (fencing its old holder out) and reads the session's end
        from the log: a session that ended with a model outcome makes the item done; anything
        else queues it again (a lost lease counts as a failed attempt) or fails it."""
        now = self._clock()
        with self._read.connect() as conn:
            due = conn.execute(
                sa.select(wi.c.item_id, wi.c.lease_token).where(
                    wi.c.lease_token.is_not(None), wi.c.lease_expires < now
                )
            ).all()
        settled = []
        for item_id, token in due:
            expired = self._expire_one(item_id, token, now, max_attempts)
            if expired is not None:
                settled.append(expired)
        return settled

    def _expire_one(
        self, item_id: str, token: str, now: float, max_attempts: int
    ) -> ExpiredLease | None:
        with self._write.begin() as conn:
            lock = sa.select(wi.c.source_id, wi.c.session_id, wi.c.failures, wi.c.kind).where(
                wi.c.item_id == item_id, wi.c.lease_token == token, wi.c.lease_expires < now
            )
            if self._postgres:
                lock = lock.with_for_update()
            row = conn.execute(lock).first()
            if row is None:  # renewed, finished or reclaimed by someone else meanwhile
                return None
            ended = _session_end(conn, row.session_id)
            values: dict[str, Any] = {"lease_token": None, "lease_expires": None}
            if ended is not None and not ended.infrastructure and ended.status != "interrupted":
                values.update(state=_keep_superseded("done"), status=ended.status)
                values.update(finished_at=now, last_error=None)
            else:
                failed = row.failures + 1 >= max_attempts or row.kind == "backfilled"
                values.update(
                    state=_keep_superseded("failed" if failed else "queued"),
                    status="interrupted",
                    failures=row.failures + 1,
                    not_before=now,
                    finished_at=now if failed else None,
                    last_error="lease lost: its worker stopped renewing it",
                )
            state = conn.execute(
                wi.update().where(wi.c.item_id == item_id).values(**values).returning(wi.c.state)
            ).scalar_one()
        return ExpiredLease(
            item_id=item_id,
            source_id=row.source_id,
            session_id=row.session_id if ended is None else None,
            state=str(state),
        )

    def retry(self, *, statuses: Sequence[str], item_ids: Sequence[str] | None = None) -> int:
        """Queue ended items again as a new attempt: done items whose session ended with one of
        `statuses`, and failed items when `failed` is among them (of `item_ids` only, when
        given). Returns how many."""
        now = self._clock()
        wanted = [s for s in statuses if s != "failed"]
        condition = sa.and_(wi.c.state == "done", wi.c.status.in_(wanted))
        if "failed" in statuses:
            condition = sa.or_(
                condition, sa.and_(wi.c.state == "failed", wi.c.kind != "backfilled")
            )
        chunks: list[sa.ColumnElement[bool]] = [condition]
        if item_ids is not None:
            ids = list(item_ids)
            chunks = [
                sa.and_(condition, wi.c.item_id.in_(ids[i : i + _CHUNK]))
                for i in range(0, len(ids), _CHUNK)
            ]
        moved = 0
        with self._write.begin() as conn:
            for where in chunks:
                moved += conn.execute(
                    wi.update()
                    .where(where)
                    .values(state="queued", failures=0, not_before=now, finished_at=None)
                ).rowcount
            if moved:
                self._notify(conn)
        return int(moved)

    def _raw_one(self, statement: str, params: Sequence[Any]) -> Any:
        """One statement on a pooled DBAPI connection in autocommit (its own transaction; on
        SQLite a single write statement takes and releases the write lock by itself), and
        its first row. Claims, renewals and releases run many times a second across a fleet:
        through SQLAlchemy each cost ten times the statement itself."""
        if self._raw is None:  # a queue without the store's pool (tests of the SQL alone)
            with self._single() as conn:
                return conn.exec_driver_sql(statement, tuple(params)).first()
        try:
            conn = self._raw.get()
            try:
                cursor = conn.execute(statement, params)
                # fetchall: SQLite finishes (and commits) a RETURNING statement only once
                # every row was read; stopping at one would hold the write lock.
                rows = cursor.fetchall() if cursor.description else []
                return rows[0] if rows else None
            finally:
                self._raw.put(conn)
        except _unavailable_errors() as e:
            raise StoreUnavailable(f"the work queue's database cannot be reached: {e}") from e

    @contextlib.contextmanager
    def _single(self) -> Iterator[sa.Connection]:
        """A connection for one statement that is its own transaction. PostgreSQL runs it in
        autocommit (no BEGIN and COMMIT round trips: claims and releases are one round trip
        each); SQLite takes its write lock with BEGIN IMMEDIATE as every write does."""
        if self._autocommit is None:
            with self._write.begin() as conn:
                yield conn
            return
        with self._autocommit.connect() as conn:
            yield conn

    # ------------------------------------------------------------------ waiting

    def _notify(self, conn: sa.Connection) -> None:
        # Delivered when the transaction commits, to every worker LISTENing (PostgreSQL).
        if self._postgres:
            conn.execute(sa.text(f"SELECT pg_notify('{_CHANNEL}', '')"))

    def wait_for_work(self, timeout: float) -> None:
        """Return when new work may be there: a NOTIFY from an enqueue, retry or release on
        PostgreSQL (LISTEN on a connection of its own), or after `timeout` seconds (SQLite has
        no notifications: workers poll)."""
        if not self._postgres or self._listen_connect is None:
            time.sleep(timeout)
            return
        with self._listener_lock:
            if self._listener is None:
                conn = self._listen_connect()
                conn.execute(f"LISTEN {_CHANNEL}")
                self._listener = conn
            listener = self._listener
        try:
            for _ in listener.notifies(timeout=timeout, stop_after=1):
                pass
        except Exception:  # a dropped listener: poll this time, reconnect next time
            with self._listener_lock:
                self._listener = None
            time.sleep(timeout)

    def close(self) -> None:
        with self._listener_lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()

    # ------------------------------------------------------------------ reading

    def items(
        self, *, states: Sequence[str] | None = None, item_ids: Sequence[str] | None = None
    ) -> list[WorkItemRow]:
        query = sa.select(*_ROW_COLUMNS).order_by(wi.c.enqueued_at, wi.c.item_id)
        if states is not None:
            query = query.where(wi.c.state.in_(list(states)))
        rows: list[WorkItemRow] = []
        with self._read.connect() as conn:
            if item_ids is None:
                return [_row(r._mapping) for r in conn.execute(query)]
            ids = list(item_ids)
            for start in range(0, len(ids), _CHUNK):
                chunk = query.where(wi.c.item_id.in_(ids[start : start + _CHUNK]))
                rows += [_row(r._mapping) for r in conn.execute(chunk)]
        return rows

    def counts(self) -> dict[tuple[str, str | None], int]:
        """(state, status) -> items."""
        query = sa.select(wi.c.state, wi.c.status, sa.func.count()).group_by(
            wi.c.state, wi.c.status
        )
        with self._read.connect() as conn:
            return {(r[0], r[1]): int(r[2]) for r in conn.execute(query)}

    def finished_since(self, since: float) -> int:
        """Items that ended (done or failed) after `since`: the throughput figure."""
        query = sa.select(sa.func.count()).where(wi.c.finished_at >= since)
        with self._read.connect() as conn:
            return int(conn.execute(query).scalar_one())


def _keep_superseded(state: str) -> Any:
    """A superseded item stays superseded whatever its last lease did."""
    return sa.case((wi.c.state == "superseded", "superseded"), else_=state)


def _session_end(conn: sa.Connection, session_id: str | None) -> SessionEnded | None:
    if not session_id:
        return None
    row = conn.execute(
        sa.select(events.c.schema_version, events.c.payload).where(
            events.c.stream_id == f"session-{session_id}", events.c.type == "session_ended"
        )
    ).first()
    if row is None:
        return None
    ended = decode_payload("session_ended", row.schema_version, row.payload)
    return ended if isinstance(ended, SessionEnded) else None


def _new_row(item: NewWorkItem, now: float, *, order: int) -> dict[str, Any]:
    return {
        "item_id": uuid.uuid4().hex,
        "source_id": item.source_id,
        "digest": item.digest,
        "kind": item.kind,
        "spec": item.spec.decode(),
        "state": "queued",
        "status": None,
        "attempts": 0,
        "failures": 0,
        "not_before": now,
        "session_id": None,
        "enqueued_at": now + order * 1e-6,
    }


def _row(mapping: Any) -> WorkItemRow:
    return msgspec.convert({str(k): v for k, v in mapping.items()}, WorkItemRow)


def _unavailable_errors() -> tuple[type[Exception], ...]:
    """The drivers' OperationalError, without importing psycopg for a SQLite store (evaluated
    only when an exception is on its way; while psycopg is not imported none of its errors
    can be raised)."""
    psycopg = sys.modules.get("psycopg")
    ours: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
    return (*ours, psycopg.OperationalError) if psycopg is not None else ours


class _QueueSql:
    """The hot statements as SQL text, once per dialect (`p` is the driver's marker)."""

    def __init__(self, p: str, *, postgres: bool) -> None:
        lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
        self._p, self._postgres, self._lock = p, postgres, lock
        self.claim = self._claim("")
        released = "lease_token = NULL, lease_expires = NULL"
        keep = "CASE WHEN state = 'superseded' THEN 'superseded' ELSE '{}' END"
        owned = f"WHERE item_id = {p} AND lease_token = {p} RETURNING state"
        self.renew = (
            f"UPDATE work_items SET heartbeat_at = {p}, lease_expires = {p} "
            f"WHERE item_id = {p} AND lease_token = {p} RETURNING 1"
        )
        self.finish_done = (
            f"UPDATE work_items SET state = {keep.format('done')}, status = {p}, "
            f"finished_at = {p}, last_error = NULL, {released} {owned}"
        )
        self.finish_release = (
            f"UPDATE work_items SET state = {keep.format('queued')}, status = {p}, "
            f"not_before = {p}, last_error = {p}, {released} {owned}"
        )
        self.finish_retry = (
            "UPDATE work_items SET state = CASE WHEN state = 'superseded' THEN 'superseded' "
            f"WHEN failures + 1 >= {p} THEN 'failed' ELSE 'queued' END, status = {p}, "
            f"failures = failures + 1, not_before = {p}, "
            f"finished_at = CASE WHEN failures + 1 >= {p} THEN {p} ELSE NULL END, "
            f"last_error = {p}, {released} {owned}"
        )
        self.notify = f"SELECT pg_notify('{_CHANNEL}', '')"

    def _claim(self, only: str) -> str:
        p = self._p
        return (
            f"UPDATE work_items SET state = 'leased', lease_token = {p}, worker_id = {p}, "
            f"host = {p}, pid = {p}, leased_at = {p}, heartbeat_at = {p}, lease_expires = {p}, "
            f"attempts = attempts + 1, session_id = {p} "
            "WHERE item_id = (SELECT item_id FROM work_items "
            f"WHERE state = 'queued' AND not_before <= {p}{only} "
            f"ORDER BY enqueued_at, item_id LIMIT 1{self._lock}) "
            "RETURNING item_id, source_id, kind, spec, attempts, failures"
        )

    def claim_only(self, n: int) -> str:
        if self._postgres:
            return self._claim(" AND item_id = ANY(%s::text[])")
        return self._claim(f" AND item_id IN ({', '.join('?' * n)})")
