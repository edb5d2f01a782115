"""One read of the log for several projections: `ise-es project all`, and every catch-up.

Run one after another, export, audit and stats each read and decode the whole log and fold
every session again. Here the log is read once, with the union of the event types they read
(chunks, HTTP exchanges and ToolCallStarted are never decoded; model calls and file diffs only
when a reader needs them), each session is folded once, and the one `SessionView` goes to
every consumer:

- each read model (`AuditModel`, `StatsModel`...) keeps its own checkpoint: a session reaches a
  model only when one of its events is past that model's checkpoint, and the model's rows and
  checkpoint are committed together every `FLUSH_SESSIONS` sessions. So a model that was
  current before the pass is not rewritten, and one that was rebuilt (new version, new
  lexicon) catches up from 0 in the same read. `readmodel.catch_up` is this pass with one
  model;
- the export (optional) receives every ended session, as `export_sft` does on its own.

The read starts at the lowest checkpoint, or at 0 when the export takes part (an export is
always a whole-corpus file). It takes the store's `read_payloads` pages, (position, stream,
version, type, payload) tuples with no `StoredEvent` envelope around them.

Memory stays bounded whatever the corpus size: events are buffered per stream only until the
stream's SessionEnded arrives; past `max_buffered` events (checked once per page) every open
stream is dropped from memory (the read models get it refolded from the store at that flush)
and re-read whole from the store when it ends.

The garbage collector is paused for the pass: the decoded payloads form no reference cycles,
and the collections their allocation triggered cost about a fifth of a catch-up read (on a
1,000-session corpus). Whatever the pass leaves cyclic is collected when it ends.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import sqlalchemy as sa

from ise_es.events import ReplayEnded, ReplayStarted
from ise_es.projections.session import SESSION_EVENT_TYPES, SessionView, fold_payloads
from ise_es.projections.stats import ReplaySummary
from ise_es.store.base import EventStore
from ise_es.store.projection import Payload

__all__ = [
    "FLUSH_SESSIONS",
    "CatchUpResult",
    "OnePass",
    "PartCounts",
    "ReadModel",
    "SessionSink",
    "replay_source",
    "start_checkpoint",
    "write_batch",
]

FLUSH_SESSIONS = 500
"""Sessions per transaction: bounds both memory and the work lost to a crash."""
PAGE = 5000
"""Events per read of the log."""

SessionSink = Callable[[SessionView], None]
"""Receives every ended session of the log, in the order their SessionEnded was stored."""


class ReadModel(Protocol):
    name: str
    """Checkpoint name (includes the model's version)."""
    checkpoint_prefix: str
    """Checkpoints of older versions start with this and are removed on rebuild."""
    types: tuple[str, ...]
    """The event types the model's rows are computed from (the pass decodes no others)."""

    def reset(self, conn: sa.Connection) -> None: ...

    def write_sessions(self, conn: sa.Connection, views: list[SessionView]) -> None: ...

    def write_replays(self, conn: sa.Connection, replays: list[ReplaySummary]) -> None: ...


@dataclass(slots=True)
class PartCounts:
    """What one part of a pass split by stream (parts.py) read and wrote."""

    events: int
    sessions: dict[str, int]
    """Sessions written per read model (by checkpoint name)."""
    replays: dict[str, int]


@dataclass(slots=True)
class CatchUpResult:
    name: str
    rebuilt: bool
    events: int
    """Events read after the checkpoint."""
    sessions: int
    """Sessions (re)folded."""
    replays: int
    position: int
    seconds: float
    parts: int = 1
    """Processes the read was split among (parts.py)."""


def start_checkpoint(store: EventStore, model: ReadModel, *, rebuild: bool) -> tuple[int, bool]:
    """The position `model` resumes after, and whether it starts over (asked to, or no
    checkpoint of this version: its rows are deleted and its checkpoint set to 0, and the
    checkpoints of its older versions are forgotten)."""
    position = store.projection_checkpoint(model.name)
    if not rebuild and position is not None:
        return position, False
    store.write_projection(model.name, 0, model.reset, replace_prefix=model.checkpoint_prefix)
    return 0, True


def write_batch(
    store: EventStore,
    model: ReadModel,
    views: list[SessionView],
    replays: list[ReplaySummary],
    position: int,
) -> None:
    """`model`'s rows for a batch and its checkpoint `position`, in one transaction (the
    store's read-model verb owns it; the model only writes its own tables)."""

    def rows(conn: sa.Connection) -> None:
        if views:
            model.write_sessions(conn, views)
        if replays:
            model.write_replays(conn, replays)

    store.write_projection(model.name, position, rows)


def replay_source(store: EventStore, replay_stream: str) -> str:
    """The session a replay stream replays, from its ReplayStarted ("" when it has none)."""
    head = store.read_stream(replay_stream, 1, to_version=1)
    if head and isinstance(head[0].data, ReplayStarted):
        return head[0].data.source_stream
    return ""


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Consumer:
    """One read model in the pass: where it resumes, and what it has been fed."""

    def __init__(self, model: ReadModel, position: int, rebuilt: bool) -> None:
        self.model = model
        self.position = position
        self.rebuilt = rebuilt
        self.sessions = self.replays = 0
        self.seconds = 0.0


class OnePass:
    """Catch several read models up (and optionally feed an export) in one read of the log."""

    def __init__(
        self,
        store: EventStore,
        models: Sequence[ReadModel],
        *,
        rebuild: bool = False,
        max_buffered: int = 200_000,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.max_buffered = max_buffered
        self.progress = progress
        self.consumers = [
            _Consumer(m, *start_checkpoint(store, m, rebuild=rebuild)) for m in models
        ]
        self.events_read = 0
        self.parts = 1
        """Processes the read was split among (parts.py)."""
        self._part: tuple[int, int] | None = None
        self._until: int | None = None
        self._buffers: dict[str, list[Payload]] = {}
        self._ready: list[SessionView] = []
        self._replays: list[tuple[int, ReplaySummary]] = []
        self._replay_sources: dict[str, str] = {}

    def types(self, export_types: Iterable[str] | None = None) -> tuple[str, ...]:
        """The union of the types the models read (and the export's, when given)."""
        wanted = set(export_types or ())
        for c in self.consumers:
            wanted.update(c.model.types)
        return tuple(sorted(wanted))

    def start(self, *, export: bool) -> int:
        """The position the pass reads after: the lowest checkpoint, 0 with an export."""
        return 0 if export or not self.consumers else self._lowest()

    def run(
        self,
        export: SessionSink | None = None,
        *,
        export_types: Iterable[str] = SESSION_EVENT_TYPES,
        part: tuple[int, int] | None = None,
        until: int | None = None,
    ) -> int:
        """Read the log once from `start()`; returns the last position read. `export_types`
        are the event types the export's sessions need. Results per model are in `results()`.

        With `part` = (index, count), only that share of the streams is read, up to `until`,
        and the models' rows are written with their checkpoints left where they were: the
        pass's other parts are not done yet, so `advance` moves them once they all are."""
        started = time.perf_counter()
        self._part, self._until = part, until
        types = self.types(export_types if export is not None else None)
        last = self.start(export=export is not None)
        with _gc_paused():
            for page in self._pages(last, types):
                last = page[-1][0]
                self.events_read += len(page)
                buffered = self._feed(page, types, export)
                if self.progress is not None:
                    self.progress(self.events_read)
                if len(self._ready) >= FLUSH_SESSIONS or buffered > self.max_buffered:
                    self._flush(last)
            self._flush(last)
        # No gc.collect() here: what the pass allocated is all in the youngest generation and
        # goes in the collector's next young collection, while a full collection costs 0.1-0.5 s
        # in a process that holds many objects (the viewer's periodic index pass, the tests).
        elapsed = time.perf_counter() - started
        for c in self.consumers:
            c.seconds = elapsed
        return last

    def _pages(self, after: int, types: tuple[str, ...]) -> Iterator[list[Payload]]:
        """The log's pages after `after`, each read (on a thread of its own) while the one
        before it is folded: the database's share of a read runs without the GIL (sqlite3
        steps, psycopg waits), so on a second core it overlaps the folding."""
        with ThreadPoolExecutor(1, thread_name_prefix="ise-es-read") as reader:
            read = partial(
                self.store.read_payloads, types=types, until=self._until, part=self._part
            )
            pending = reader.submit(read, after, PAGE)
            while True:
                page = pending.result()
                if len(page) == PAGE:
                    pending = reader.submit(read, page[-1][0], PAGE)
                if page:
                    yield page
                if len(page) < PAGE:
                    return

    def _lowest(self) -> int:
        return min(c.position for c in self.consumers)

    # The loop every event of the log goes through: one frame, no call per event.
    def _feed(self, page: list[Payload], types: tuple[str, ...], export: SessionSink | None) -> int:
        """Buffer a page's session events; fold each session its SessionEnded closes. Returns
        how many events are buffered."""
        buffers = self._buffers
        ready = self._ready if self.consumers else None
        for row in page:
            stream_id = row[1]
            events = buffers.get(stream_id)
            if events is None:
                if not stream_id.startswith("session-"):
                    self._other(row)
                    continue
                events = buffers[stream_id] = []
            events.append(row)
            if row[3] == "session_ended":
                del buffers[stream_id]
                if events[0][2] != 1:  # its start was dropped at a flush: read it whole
                    events = self._stream(stream_id, types)
                view = fold_payloads(events, stream_id)
                if ready is not None:
                    ready.append(view)
                if export is not None:
                    export(view)
        return sum(len(events) for events in buffers.values())

    def _other(self, row: Payload) -> None:
        """An event of a replay stream (the only other streams the models' types reach)."""
        position, stream_id, _, _, data = row
        if isinstance(data, ReplayStarted):
            self._replay_sources[stream_id] = data.source_stream
        elif isinstance(data, ReplayEnded):
            source = self._replay_sources.get(stream_id) or replay_source(self.store, stream_id)
            summary = ReplaySummary(
                replay_id=stream_id,
                source_stream=source,
                status=data.status,
                determinism=data.determinism,
            )
            self._replays.append((position, summary))

    def _stream(self, stream_id: str, types: Iterable[str]) -> list[Payload]:
        wanted = set(types)
        return [
            (e.position, e.stream_id, e.version, e.type, e.data)
            for e in self.store.read_stream(stream_id)
            if e.type in wanted
        ]

    def _flush(self, last: int) -> None:
        """Write each model's share of what was read up to `last`: the sessions that ended,
        and the open ones refolded from the store (their buffers are dropped)."""
        if self.consumers:
            for stream_id in self._buffers:
                events = self._stream(stream_id, self.types())
                self._ready.append(fold_payloads(events, stream_id))
        self._buffers.clear()
        self._write(self._ready, self._replays, last)
        self._ready.clear()
        self._replays.clear()

    def _write(
        self,
        views: list[SessionView],
        replays: list[tuple[int, ReplaySummary]],
        last: int,
    ) -> None:
        """Each model's share of the batch and its new checkpoint, in one transaction."""
        held = self._part is not None
        for c in self.consumers:
            if last <= c.position and not views:
                continue
            mine = [v for v in views if v.last_position > c.position]
            theirs = [r for position, r in replays if position > c.position]
            checkpoint = c.position if held else max(last, c.position)
            write_batch(self.store, c.model, mine, theirs, checkpoint)
            c.sessions += len(mine)
            c.replays += len(theirs) if "replay_ended" in c.model.types else 0
            c.position = checkpoint

    def counts(self) -> PartCounts:
        return PartCounts(
            events=self.events_read,
            sessions={c.model.name: c.sessions for c in self.consumers},
            replays={c.model.name: c.replays for c in self.consumers},
        )

    def advance(self, position: int, parts: Iterable[PartCounts], seconds: float) -> None:
        """Once every part of a split pass is done: each model's checkpoint to `position` (the
        parts' `until`), and the other parts' counts added to this one's."""
        for counts in parts:
            self.parts += 1
            self.events_read += counts.events
            for c in self.consumers:
                c.sessions += counts.sessions.get(c.model.name, 0)
                c.replays += counts.replays.get(c.model.name, 0)
        for c in self.consumers:
            # Every checkpoint was read before the pass fixed `position`, the end of the log
            # then: in catch-up order it is never behind one (on PostgreSQL that order is not
            # the positions' numeric order, so no max() here).
            self.store.write_projection(c.model.name, position)
            c.position = position
            c.seconds = seconds

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
                parts=self.parts,
            )
            for c in self.consumers
        ]
