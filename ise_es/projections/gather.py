"""The catch-up read of the envelope exports (ATIF, the Hugging Face folder).

These need more than a read model's payloads: each event's `recorded_at` (ATIF's step
timestamps) and the stored events themselves. So they read `StoredEvent`s with `iter_all`
rather than onepass.py's payload tuples, in the same bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable

from ise_es.events import SessionEnded
from ise_es.projections.session import SESSION_EVENT_TYPES, SessionView, fold_session
from ise_es.store.base import EventStore, StoredEvent

__all__ = ["gather_sessions"]


def gather_sessions(
    store: EventStore,
    on_session: Callable[[SessionView, list[StoredEvent]], None],
    *,
    types: tuple[str, ...] = SESSION_EVENT_TYPES,
    on_other: Callable[[StoredEvent], None] | None = None,
    max_buffered: int = 500_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """One catch-up read of the log: each session is folded and handed to `on_session`
    (with its events) when its SessionEnded arrives; events of other streams (when `types`
    asks for them) go to `on_other`. Returns the last position read."""
    buffers: dict[str, list[StoredEvent]] = {}
    dropped: set[str] = set()
    buffered = last = n = 0
    for stored in store.iter_all(0, batch=5000, types=types):
        last = stored.position
        n += 1
        stream_id = stored.stream_id
        if not stream_id.startswith("session-"):
            if on_other is not None:
                on_other(stored)
            continue
        if stream_id in dropped:
            events = None
        else:
            events = buffers.setdefault(stream_id, [])
            events.append(stored)
            buffered += 1
        if isinstance(stored.data, SessionEnded):
            if events is None:
                dropped.discard(stream_id)
                events = [e for e in store.read_stream(stream_id) if e.type in types]
            else:
                buffered -= len(buffers.pop(stream_id))
            on_session(fold_session(events, stream_id), events)
        elif buffered > max_buffered:
            # Too many sessions open at once: forget them, re-read each when it ends.
            dropped.update(buffers)
            buffers.clear()
            buffered = 0
        if progress is not None and n % 100_000 == 0:
            progress(n)
    return last
