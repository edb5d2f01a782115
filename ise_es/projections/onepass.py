"""One read of the log for several projections: `ise-es project all`.

Run one after another, export, audit and stats each read and decode the whole log and fold
every session again (on the 23,826-session corpus: 115 s for the three against 24.5 s for one
bare read). Here the log is read once, with the union of the event types they read (chunks,
HTTP exchanges and ToolCallStarted are never decoded), each session is folded once, and the
one `SessionView` goes to every consumer:

- each read model (`AuditModel`, `StatsModel`) keeps its own checkpoint: a session reaches a
  model only when one of its events is past that model's checkpoint, and the model's rows and
  checkpoint are committed together every `FLUSH_SESSIONS` sessions, as `catch_up` does. So a
  model that was current before the pass is not rewritten, and one that was rebuilt (new
  version, new lexicon) catches up from 0 in the same read;
- the export (optional) receives every ended session, as `export_sft` does on its own.

The read starts at the lowest checkpoint, or at 0 when the export takes part (an export is
always a whole-corpus file). Memory is bounded as in `catch_up`: open sessions are buffered
only until their SessionEnded, and past `max_buffered` events they are refolded from the
store at a flush and dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ise_es.events import ReplayEnded, ReplayStarted, SessionEnded
from ise_es.projections.readmodel import (
    FLUSH_SESSIONS,
    CatchUpResult,
    ReadModel,
    _replay_source,
    start_checkpoint,
    write_batch,
)
from ise_es.projections.session import SESSION_EVENT_TYPES, SessionView, fold_session
from ise_es.projections.stats import ReplaySummary
from ise_es.store.base import EventStore, StoredEvent
from ise_es.store.engine import Engines

__all__ = ["OnePass", "SessionSink"]

SessionSink = Callable[[SessionView], None]
"""Receives every ended session of the log, in the order their SessionEnded was stored."""


class _Consumer:
    """One read model in the pass: where it resumes, and what it has been fed."""

    def __init__(self, model: ReadModel, position: int, rebuilt: bool) -> None:
        self.model = model
        self.position = position
        self.rebuilt = rebuilt
        self.events = self.sessions = self.replays = 0
        self.seconds = 0.0


class OnePass:
    """Catch several read models up (and optionally feed an export) in one read of the log."""

    def __init__(
        self,
        store: EventStore,
        engines: Engines,
        models: Sequence[ReadModel],
        *,
        rebuild: bool = False,
        max_buffered: int = 200_000,
    ) -> None:
        self.store = store
        self.engines = engines
        self.max_buffered = max_buffered
        self.consumers = [
            _Consumer(m, *start_checkpoint(store, m, rebuild=rebuild)) for m in models
        ]
        self.events_read = 0

    def types(self, with_export: bool) -> tuple[str, ...]:
        wanted = set(SESSION_EVENT_TYPES) if with_export else set()
        for c in self.consumers:
            wanted.update(c.model.types)
        return tuple(sorted(wanted))

    def run(self, export: SessionSink | None = None) -> int:
        """Read the log once from the lowest checkpoint (0 with an export); returns the last
        position read. Results per model are in `results()`."""
        started = time.perf_counter()
        types = self.types(export is not None)
        start = (
            0
            if export is not None or not self.consumers
            else min(c.position for c in self.consumers)
        )
        buffers: dict[str, list[StoredEvent]] = {}
        buffered = 0
        ready: list[SessionView] = []
        replays: list[tuple[int, ReplaySummary]] = []
        replay_sources: dict[str, str] = {}
        last = start

        def flush() -> None:
            nonlocal buffered
            for stream_id in list(buffers):
                ready.append(fold_session(self.store.read_stream(stream_id), stream_id))
            buffers.clear()
            buffered = 0
            self._write(ready, replays, last)
            ready.clear()
            replays.clear()

        for stored in self.store.iter_all(start, batch=5000, types=types):
            self.events_read += 1
            last = stored.position
            data = stored.data
            stream_id = stored.stream_id
            if isinstance(data, ReplayStarted):
                replay_sources[stream_id] = data.source_stream
                continue
            if isinstance(data, ReplayEnded):
                source = replay_sources.get(stream_id) or _replay_source(self.store, stream_id)
                replays.append(
                    (
                        last,
                        ReplaySummary(
                            replay_id=stream_id,
                            source_stream=source,
                            status=data.status,
                            determinism=data.determinism,
                        ),
                    )
                )
                continue
            if not stream_id.startswith("session-"):
                continue
            events = buffers.setdefault(stream_id, [])
            events.append(stored)
            buffered += 1
            if isinstance(data, SessionEnded):
                del buffers[stream_id]
                buffered -= len(events)
                if events[0].version != 1:  # its start was dropped at a flush: read it whole
                    events = [e for e in self.store.read_stream(stream_id) if e.type in types]
                view = fold_session(events, stream_id)
                ready.append(view)
                if export is not None:
                    export(view)
            if len(ready) >= FLUSH_SESSIONS or buffered > self.max_buffered:
                flush()
        flush()
        elapsed = time.perf_counter() - started
        for c in self.consumers:
            c.seconds = elapsed
        return last

    def _write(
        self,
        views: list[SessionView],
        replays: list[tuple[int, ReplaySummary]],
        last: int,
    ) -> None:
        """Each model's share of the batch and its new checkpoint, in one transaction."""
        for c in self.consumers:
            if last <= c.position and not views:
                continue
            mine = [v for v in views if v.last_position > c.position]
            theirs = [r for position, r in replays if position > c.position]
            write_batch(self.store, c.model, mine, theirs, max(last, c.position))
            c.sessions += len(mine)
            c.replays += len(theirs) if "replay_ended" in c.model.types else 0
            c.position = max(c.position, last)

    def results(self) -> list[CatchUpResult]:
        return [
            CatchUpResult(
                name=c.model.name,
                rebuilt=c.rebuilt,
                events=self.events_read,
                sessions=c.sessions,
                replays=c.replays,
                position=c.position,
                seconds=c.seconds,
            )
            for c in self.consumers
        ]
