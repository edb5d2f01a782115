"""Appending a replay's own stream (`replay-<id>`): ReplayStarted, StepReplayed..., ReplayEnded.

Steps are batched briefly (a quick command takes a few milliseconds, an append about one), and
event ids are derived from the stream id and version, so a retried append is a no-op.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ise_es.events import Event
from ise_es.store.base import EventStore, NewEvent

__all__ = ["ReplayWriter"]


class ReplayWriter:
    def __init__(
        self,
        store: EventStore,
        stream_id: str,
        *,
        max_pending: int = 16,
        max_age_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.stream_id = stream_id
        self.version = 0
        self._max_pending = max_pending
        self._max_age_s = max_age_s
        self._clock = clock
        self._pending: list[Event] = []
        self._blobs: list[bytes] = []
        self._since = 0.0

    def add(self, event: Event, blobs: Sequence[bytes] = (), *, flush: bool = False) -> None:
        if not self._pending:
            self._since = self._clock()
        self._pending.append(event)
        self._blobs.extend(blobs)
        if (
            flush
            or len(self._pending) >= self._max_pending
            or self._clock() - self._since >= self._max_age_s
        ):
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        batch = [
            NewEvent(e, event_id=f"{self.stream_id}:{self.version + i + 1}")
            for i, e in enumerate(self._pending)
        ]
        result = self.store.append(self.stream_id, batch, self.version, blobs=self._blobs)
        self.version = result.version
        self._pending, self._blobs = [], []
