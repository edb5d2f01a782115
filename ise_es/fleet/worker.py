"""A worker: claims work items from the store's queue and records them, many at once.

Sessions wait on their models, so one worker process runs `concurrency` sessions in threads.
Around them the worker:
- renews every lease it holds by heartbeat (every lease/3 seconds); a renewal that finds the
  lease gone stops that session at once (its sandbox's commands are killed), and the store's
  fencing refuses whatever it still tries to append;
- reclaims other workers' expired leases (store/queue.py settles each against the log) and
  closes the sessions they left open `interrupted`;
- settles each item by the retry policy: an outcome of the models (completed, turn_cap,
  stalled, an unusable model reply) ends the item; an infrastructure failure (endpoint down
  after retries, sandbox failure, a crash in the recorder) queues it again with exponential
  backoff until `max_attempts`, then the item is `failed`; a session stopped by its worker
  (drain, Ctrl-C) goes back to the queue without counting as a failure.

Stopping: `drain()` (SIGTERM) stops claiming and lets sessions in flight finish within
`drain_timeout`, then stops them; `stop()` (and Ctrl-C in `run`) stops them now. Stopped
sessions end `interrupted`, their sandboxes are removed and their leases released.

Memory stays flat over days: nothing per finished session is kept but counters, a bounded list
of recent errors and a bounded sample of append latencies.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ise_es.events import Event, ModelCall, SessionEnded, ToolCallFinished
from ise_es.simulate.session import SessionControl, SessionPlan, SessionResult, record_session
from ise_es.store.base import EventStore, Lease, WorkerInfo
from ise_es.tools import FixtureWebGateway

__all__ = ["Worker", "WorkerOptions", "WorkerReport", "worker_info"]

Planner = Callable[[Lease], SessionPlan]
"""Builds the SessionPlan of a claimed item (fleet.spec.session_plan over its spec)."""

_LATENCY_SAMPLES = 20_000
_RECENT_ERRORS = 50
_CLAIM_CHUNK = 500


def worker_info(worker_id: str | None = None) -> WorkerInfo:
    host = socket.gethostname()
    pid = os.getpid()
    return WorkerInfo(
        worker_id=worker_id or f"{host}-{pid}-{uuid.uuid4().hex[:6]}", host=host, pid=pid
    )


@dataclass(frozen=True)
class WorkerOptions:
    concurrency: int = 1
    """Sessions in flight at once."""
    lease_seconds: float = 60.0
    max_attempts: int = 3
    """Infrastructure failures an item may have before it is `failed`."""
    backoff_seconds: float = 10.0
    """First retry delay; doubled per failure (with jitter), capped at 1 hour."""
    drain_timeout: float = 60.0
    poll_seconds: float = 1.0
    """How long an idle worker waits for new work between checks."""
    until_empty: bool = False
    """Exit when nothing is queued or leased any more (else wait for new work)."""
    max_sessions: int | None = None
    """Exit after starting this many sessions."""


@dataclass
class WorkerReport:
    statuses: Counter[str] = field(default_factory=Counter)
    """How the sessions this worker recorded ended."""
    settled: Counter[str] = field(default_factory=Counter)
    """What their items became: done, queued (retry or release), failed, lost (lease lost)."""
    sessions: int = 0
    reclaimed: int = 0
    """Expired leases of other workers settled by this one."""
    tokens: int = 0
    tool_calls: int = 0
    seconds: float = 0.0
    errors: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=_RECENT_ERRORS))
    """(session id, reason) of the latest sessions that ended `error`."""
    append_latencies: list[float] = field(default_factory=list)
    """A uniform sample (reservoir) of the event appends' latencies, in seconds."""
    _latency_seen: int = 0

    def add_latencies(self, values: Sequence[float], rng: random.Random) -> None:
        for value in values:
            self._latency_seen += 1
            if len(self.append_latencies) < _LATENCY_SAMPLES:
                self.append_latencies.append(value)
            else:
                slot = rng.randrange(self._latency_seen)
                if slot < _LATENCY_SAMPLES:
                    self.append_latencies[slot] = value


class Worker:
    """Works the queue of one store (see the module docstring)."""

    def __init__(
        self,
        store: EventStore,
        planner: Planner,
        *,
        options: WorkerOptions | None = None,
        info: WorkerInfo | None = None,
        only: Sequence[str] | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_start: Callable[[Lease], None] | None = None,
        on_done: Callable[[Lease, SessionResult, str | None], None] | None = None,
    ) -> None:
        """`only`: work just these items and return once each is done or failed (`record`);
        None works whatever is queued (`ise-es worker`)."""
        self.store = store
        self.queue = store.queue
        self.planner = planner
        self.options = options or WorkerOptions()
        self.info = info or worker_info()
        self._remaining = list(dict.fromkeys(only)) if only is not None else None
        self._on_event = on_event
        self._on_start = on_start
        self._on_done = on_done
        self._controls: dict[str, SessionControl] = {}
        self._leases: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._draining = threading.Event()
        self._stopping = threading.Event()
        self._stop_reason = ""
        self._rng = random.Random()
        self._fixture_web: FixtureWebGateway | None = None
        self.report = WorkerReport()

    # ------------------------------------------------------------------ control

    def drain(self) -> None:
        """Stop claiming; sessions in flight get `drain_timeout` seconds to finish."""
        self._draining.set()

    def stop(self, reason: str = "the worker was stopped") -> None:
        """Stop every session in flight now (they end `interrupted`)."""
        self._draining.set()
        with self._lock:
            if not self._stopping.is_set():
                self._stop_reason = reason
            self._stopping.set()
            controls = list(self._controls.values())
        for control in controls:
            control.cancel(self._stop_reason)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._leases)

    # ------------------------------------------------------------------ the loop

    def run(self) -> WorkerReport:
        started = time.monotonic()
        pool = ThreadPoolExecutor(
            max_workers=self.options.concurrency, thread_name_prefix="session"
        )
        heartbeat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        heartbeat.start()
        running: set[Future[None]] = set()
        drain_deadline: float | None = None
        last_reclaim = float("-inf")
        try:
            while True:
                now = time.monotonic()
                if now - last_reclaim >= min(self.options.lease_seconds / 4, 5.0):
                    self._reclaim()
                    last_reclaim = now
                if self._draining.is_set():
                    if not running:
                        break
                    drain_deadline = drain_deadline or now + self.options.drain_timeout
                    if now >= drain_deadline:
                        self.stop("drain timeout: the worker was asked to stop (SIGTERM)")
                else:
                    running |= self._claim_more(pool, len(running))
                if not running:
                    if self._finished():
                        break
                    self.queue.wait_for_work(self.options.poll_seconds)
                    continue
                done, running = wait(
                    running, timeout=self.options.poll_seconds, return_when=FIRST_COMPLETED
                )
                for future in done:
                    future.result()  # a bug in settling surfaces here
        except KeyboardInterrupt:
            self.stop("recording interrupted (Ctrl-C)")
            wait(running)
            raise
        finally:
            self._stopping.set()  # ends the heartbeat
            pool.shutdown(wait=True, cancel_futures=True)
            heartbeat.join()
            if self._fixture_web is not None:
                self._fixture_web.close()
            self.report.seconds = time.monotonic() - started
        return self.report

    def _claim_more(self, pool: ThreadPoolExecutor, running: int) -> set[Future[None]]:
        started: set[Future[None]] = set()
        limit = self.options.max_sessions
        while running + len(started) < self.options.concurrency:
            if limit is not None and self.report.sessions >= limit:
                self._draining.set()
                break
            lease = self._claim()
            if lease is None:
                break
            self.report.sessions += 1
            with self._lock:
                self._leases[lease.item_id] = lease
                self._controls[lease.item_id] = SessionControl()
            started.add(pool.submit(self._record, lease))
        return started

    def _claim(self) -> Lease | None:
        seconds = self.options.lease_seconds
        if self._remaining is None:
            return self.queue.claim(self.info, lease_seconds=seconds)
        for start in range(0, len(self._remaining), _CLAIM_CHUNK):
            chunk = self._remaining[start : start + _CLAIM_CHUNK]
            lease = self.queue.claim(self.info, lease_seconds=seconds, only=chunk)
            if lease is not None:
                return lease
        return None

    def _finished(self) -> bool:
        """Nothing left to wait for (with `only`: all of those ended; `until_empty`: nothing
        queued or leased; max_sessions reached)."""
        if self._draining.is_set():
            return True
        if self._remaining is not None:
            rows = self.queue.items(item_ids=self._remaining)
            open_ids = {r.item_id for r in rows if r.state in ("queued", "leased")}
            self._remaining = [i for i in self._remaining if i in open_ids]
            return not self._remaining
        if self.options.until_empty:
            counts = self.queue.counts()
            return not any(state in ("queued", "leased") for state, _ in counts)
        return False

    # ------------------------------------------------------------------ one session

    def _record(self, lease: Lease) -> None:
        with self._lock:
            control = self._controls[lease.item_id]
        if self._on_start is not None:
            self._on_start(lease)
        try:
            plan = self.planner(lease)
        except Exception as e:  # a spec this machine cannot record (bad settings, old spec)
            reason = f"{type(e).__name__}: {e}"
            result = SessionResult(
                lease.session_id, "error", reason, 0, 0, 0.0, [], infrastructure=True
            )
        else:
            result = record_session(
                self.store,
                plan,
                session_id=lease.session_id,
                fence=lease.fence,
                control=control,
                gateway=self._shared_fixture_web() if plan.web.mode == "fixture" else None,
                on_event=self._count,
                provenance={
                    "work_item": lease.item_id,
                    "worker": self.info.worker_id,
                    "host": self.info.host,
                },
            )
        try:
            state = self._settle(lease, result, stopped=control.cancelled.is_set())
        except Exception as e:  # the store is unreachable: the lease expires, another settles it
            state = None
            with self._lock:
                self.report.errors.append((result.session_id, f"could not settle: {e}"))
        with self._lock:
            self._leases.pop(lease.item_id, None)
            self._controls.pop(lease.item_id, None)
            self.report.statuses[result.status] += 1
            self.report.settled[state or "lost"] += 1
            self.report.add_latencies(result.append_latencies, self._rng)
            if result.status == "error":
                self.report.errors.append((result.session_id, result.reason))
        if self._on_done is not None:
            self._on_done(lease, result, state)

    def _settle(self, lease: Lease, result: SessionResult, *, stopped: bool) -> str | None:
        if result.lease_lost:
            return None
        if stopped and self._stopping.is_set():
            return self.queue.finish(
                lease.fence, outcome="release", status=result.status, error=result.reason
            )
        if result.infrastructure:
            delay = min(self.options.backoff_seconds * 2**lease.failures, 3600.0)
            return self.queue.finish(
                lease.fence,
                outcome="retry",
                status=result.status,
                error=result.reason,
                retry_after=delay * self._rng.uniform(0.5, 1.5),
                max_attempts=self.options.max_attempts,
            )
        return self.queue.finish(lease.fence, outcome="done", status=result.status)

    def _count(self, event: Event) -> None:
        if isinstance(event, ModelCall):
            with self._lock:
                self.report.tokens += event.usage.total_tokens
        elif isinstance(event, ToolCallFinished):
            with self._lock:
                self.report.tool_calls += 1
        if self._on_event is not None:
            self._on_event(event)

    def _shared_fixture_web(self) -> FixtureWebGateway:
        # One fixture web site for the whole worker: starting and stopping its HTTP server per
        # session cost more than recording a short session.
        with self._lock:
            if self._fixture_web is None:
                self._fixture_web = FixtureWebGateway()
            return self._fixture_web

    # ------------------------------------------------------------------ leases

    def _heartbeat(self) -> None:
        interval = max(self.options.lease_seconds / 3, 0.05)
        while not self._stopping.wait(interval):
            with self._lock:
                leases = list(self._leases.values())
            for lease in leases:
                try:
                    held = self.queue.renew(lease.fence, lease_seconds=self.options.lease_seconds)
                except Exception:  # the store is unreachable: try again next beat
                    continue
                if not held:
                    with self._lock:
                        control = self._controls.get(lease.item_id)
                    if control is not None:
                        control.cancel("lease lost: another worker reclaimed the item")

    def _reclaim(self) -> None:
        for expired in self.queue.expire(max_attempts=self.options.max_attempts):
            self.report.reclaimed += 1
            if expired.session_id is not None:
                close_interrupted(self.store, f"session-{expired.session_id}")


def close_interrupted(store: EventStore, stream_id: str) -> bool:
    """End a session whose worker lost its lease; False when it never started."""
    if not store.read_stream(stream_id, to_version=1):
        return False
    store.append(
        stream_id,
        [
            SessionEnded(
                status="interrupted",
                reason="lease lost: its worker stopped renewing it",
                infrastructure=True,
            )
        ],
        None,
    )
    return True
