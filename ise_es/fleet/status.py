"""The queue's state as people and the viewer read it: counts by state, what each live worker
holds, throughput over a recent window and the ETA it implies."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from ise_es.store.base import EventStore

__all__ = ["LiveWorker", "QueueStatus", "queue_status"]


class LiveWorker(msgspec.Struct, frozen=True, kw_only=True):
    worker_id: str
    host: str
    pid: int
    items: int
    """Leases it holds now."""
    since: float
    """When it claimed the oldest of them (epoch seconds)."""
    heartbeat_age_s: float
    """Seconds since its least recent renewal (past the lease length: it is probably gone)."""


class QueueStatus(msgspec.Struct, frozen=True, kw_only=True):
    counts: dict[str, int]
    """`queued`, `leased`, `done:<session status>`, `failed`, `superseded` -> items."""
    workers: list[LiveWorker]
    window_s: float
    finished_in_window: int
    per_minute: float
    remaining: int
    """Queued plus leased."""
    eta_s: float | None
    """remaining / throughput; None when nothing finished in the window."""


def queue_status(
    store: EventStore, *, window_s: float = 600.0, clock: Callable[[], float] = time.time
) -> QueueStatus:
    now = clock()
    counts: dict[str, int] = {}
    for (state, status), n in sorted(store.queue.counts().items(), key=lambda kv: str(kv[0])):
        key = f"done:{status}" if state == "done" else state
        counts[key] = counts.get(key, 0) + n
    holders: dict[str, list[tuple[float, float, str, int]]] = {}
    for row in store.queue.items(states=["leased"]):
        if row.worker_id is None:
            continue  # backfilled from a recording made before the queue: nobody holds it
        holders.setdefault(row.worker_id, []).append(
            (row.leased_at or now, row.heartbeat_at or now, row.host or "", row.pid or 0)
        )
    workers = [
        LiveWorker(
            worker_id=worker_id,
            host=held[0][2],
            pid=held[0][3],
            items=len(held),
            since=min(h[0] for h in held),
            heartbeat_age_s=max(0.0, now - min(h[1] for h in held)),
        )
        for worker_id, held in sorted(holders.items())
    ]
    finished = store.queue.finished_since(now - window_s)
    per_minute = finished / (window_s / 60)
    remaining = counts.get("queued", 0) + counts.get("leased", 0)
    eta = remaining / (per_minute / 60) if per_minute > 0 and remaining else None
    return QueueStatus(
        counts=counts,
        workers=workers,
        window_s=window_s,
        finished_in_window=finished,
        per_minute=per_minute,
        remaining=remaining,
        eta_s=eta,
    )
