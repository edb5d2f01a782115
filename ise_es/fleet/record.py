"""`ise-es record` as the library does it: enqueue the input's items, then work the queue here
until each of them is done or failed. Another machine's worker may record some of them
meanwhile; this process waits for those too (and reclaims them if their worker dies)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ise_es.events import Event
from ise_es.fleet.spec import (
    ClientCache,
    MachineOverrides,
    WorkSpec,
    decode_spec,
    session_plan,
    work_item,
)
from ise_es.fleet.worker import Worker, WorkerOptions, WorkerReport
from ise_es.simulate.session import SessionPlan, SessionResult
from ise_es.store.base import EnqueueResult, EventStore, Lease, WorkerInfo

__all__ = ["RecordRun", "enqueue_specs", "planner_for", "record_specs"]


@dataclass
class RecordRun:
    enqueued: EnqueueResult
    already_done: int
    """Items of this input recorded before (same content): skipped."""
    report: WorkerReport | None
    """None with enqueue_only."""
    retried: int = 0
    """Failed items of this input queued again."""


def enqueue_specs(
    store: EventStore, specs: Sequence[WorkSpec], *, force: bool = False
) -> EnqueueResult:
    return store.queue.enqueue([work_item(s) for s in specs], force=force)


def planner_for(machine: MachineOverrides) -> Callable[[Lease], SessionPlan]:
    """Plans for claimed items; the model clients are shared by every session of the worker."""
    clients = ClientCache(machine.environ)

    def plan(lease: Lease) -> SessionPlan:
        spec = decode_spec(lease.spec, item_id=lease.item_id)
        return session_plan(spec, attempt=lease.attempt, machine=machine, clients=clients)

    return plan


def record_specs(
    store: EventStore,
    specs: Sequence[WorkSpec],
    *,
    machine: MachineOverrides | None = None,
    options: WorkerOptions | None = None,
    info: WorkerInfo | None = None,
    force: bool = False,
    enqueue_only: bool = False,
    on_event: Callable[[Event], None] | None = None,
    on_start: Callable[[Lease], None] | None = None,
    on_done: Callable[[Lease, SessionResult, str | None], None] | None = None,
    worker_ready: Callable[[Worker], None] | None = None,
) -> RecordRun:
    """Enqueue `specs` and record them (see the module docstring). `worker_ready` receives the
    worker before it starts, so the caller can wire signals (drain on SIGTERM) to it."""
    enqueued = enqueue_specs(store, specs, force=force)
    ids = enqueued.item_ids
    # Asking again for what failed (out of attempts: an outage outlasted the retries) records
    # it again; what the models ended stays done.
    retried = store.queue.retry(statuses=["failed"], item_ids=ids)
    done = sum(r.state == "done" for r in store.queue.items(item_ids=ids))
    if enqueue_only:
        return RecordRun(enqueued, done, None, retried)
    worker = Worker(
        store,
        planner_for(machine or MachineOverrides()),
        options=options,
        info=info,
        only=ids,
        on_event=on_event,
        on_start=on_start,
        on_done=on_done,
    )
    if worker_ready is not None:
        worker_ready(worker)
    return RecordRun(enqueued, done, worker.run(), retried)
