"""`ise-es record`: many sessions, concurrently, resumable.

Resuming: an intent whose session ended (any status but `interrupted`) is skipped; a session
that started but never ended (its recorder was killed) is closed with status `interrupted` and
its intent is recorded again in a new session with `attempt` + 1. This assumes one recorder per
store at a time: a second concurrent `record` would close the first one's sessions in flight.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ise_es.events import Event, ModelCall, SessionEnded, SessionStarted
from ise_es.simulate.session import SessionPlan, SessionResult, StreamWriter, record_session
from ise_es.store.sql import SqlEventStore
from ise_es.tools import FixtureWebGateway

__all__ = ["BatchReport", "WorkItem", "record_batch", "session_states"]


@dataclass(frozen=True)
class WorkItem:
    """One intent to record: `make_plan(attempt)` builds its SessionPlan (fresh clients)."""

    intent_id: str
    make_plan: Callable[[int], SessionPlan]


@dataclass
class BatchReport:
    results: list[SessionResult] = field(default_factory=list)
    skipped: int = 0
    closed_interrupted: int = 0
    tokens: int = 0
    seconds: float = 0.0

    def by_status(self) -> Counter[str]:
        return Counter(r.status for r in self.results)


@dataclass
class _IntentState:
    ended: bool = False
    attempts: int = 0
    open_sessions: list[tuple[str, int]] = field(default_factory=list)
    """(stream id, version) of sessions that started and never ended."""


def session_states(store: SqlEventStore) -> dict[str, _IntentState]:
    """Per intent: did a session end, how many were attempted, which are still open."""
    started: dict[str, str] = {}
    ended: dict[str, str] = {}
    for event in store.iter_all(types=["session_started", "session_ended"], batch=5000):
        if isinstance(event.data, SessionStarted):
            started[event.stream_id] = event.data.intent_id
        elif isinstance(event.data, SessionEnded):
            ended[event.stream_id] = event.data.status
    states: dict[str, _IntentState] = {}
    versions = {s.stream_id: s.version for s in store.streams("session-")}
    for stream_id, intent_id in started.items():
        state = states.setdefault(intent_id, _IntentState())
        state.attempts += 1
        status = ended.get(stream_id)
        if status is None:
            state.open_sessions.append((stream_id, versions[stream_id]))
        elif status != "interrupted":
            state.ended = True
    return states


def close_interrupted(store: SqlEventStore, stream_id: str, version: int) -> None:
    writer = StreamWriter(store, stream_id, version=version)
    writer.record(
        [
            SessionEnded(
                status="interrupted", reason="the recorder stopped before the session ended"
            )
        ],
        [],
    )
    writer.flush()


def record_batch(
    store: SqlEventStore,
    items: Sequence[WorkItem],
    *,
    workers: int = 1,
    on_event: Callable[[Event], None] | None = None,
    on_start: Callable[[WorkItem], None] | None = None,
    on_done: Callable[[SessionResult], None] | None = None,
) -> BatchReport:
    """Record every item not already recorded, `workers` sessions at a time."""
    report = BatchReport()
    started = time.monotonic()
    states = session_states(store)
    todo: list[tuple[WorkItem, int]] = []
    for item in items:
        state = states.get(item.intent_id, _IntentState())
        for stream_id, version in state.open_sessions:
            close_interrupted(store, stream_id, version)
            report.closed_interrupted += 1
        if state.ended:
            report.skipped += 1
            continue
        todo.append((item, state.attempts + 1))

    tokens = 0
    lock = threading.Lock()

    def count(event: Event) -> None:
        nonlocal tokens
        if isinstance(event, ModelCall):
            with lock:
                tokens += event.usage.total_tokens
        if on_event is not None:
            on_event(event)

    def run(item: WorkItem, attempt: int) -> SessionResult:
        if on_start is not None:
            on_start(item)
        return record_session(
            store, item.make_plan(attempt), on_event=count, cancel=cancel, gateway=web
        )

    cancel = threading.Event()
    # One fixture web site for the whole run: starting and stopping its HTTP server per session
    # cost more than recording a short session.
    web = FixtureWebGateway()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="record")
    pending: set[Future[SessionResult]] = set()
    queue = list(reversed(todo))
    try:
        while queue or pending:
            while queue and len(pending) < max(1, workers):
                item, attempt = queue.pop()
                pending.add(pool.submit(run, item, attempt))
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                report.results.append(result)
                if on_done is not None:
                    on_done(result)
    except KeyboardInterrupt:
        # Sessions in flight stop at their next step and end `interrupted`; queued ones never
        # start. Their sandboxes are closed by record_session.
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        web.close()
    report.tokens = tokens
    report.seconds = time.monotonic() - started
    return report
