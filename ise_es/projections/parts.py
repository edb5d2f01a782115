"""One pass on several cores: the log's streams shared among processes (`project all`).

Reading, decoding and folding the log is Python holding the GIL, so one process keeps one
core busy however many the machine has. Split by stream, the pass runs on `workers` cores:

- the parent fixes the end of the log (`last_position()`) before any part starts, so every
  part reads the log as it was at that moment, whatever is appended meanwhile;
- part k (the parent is part 0, the others are spawned processes) reads the events of the
  streams whose number modulo `workers` is k, up to that end (`read_payloads(part=, until=)`),
  so each stream is read whole by one part and every session is folded from the same events
  as in one pass;
- each part writes its sessions' read-model rows, with every checkpoint left where the pass
  started, and spools its export lines; the parent's exporter absorbs the other spools and
  sorts every line by session id as it does alone, so the files are the same bytes;
- once every part is done, the parent moves the checkpoints to the end position.

A crash or error mid-pass leaves the checkpoints where they were: the next pass redoes the
work, and since rows are replaced per session nothing is counted twice. Below `MIN_EVENTS`
events to read, the pass stays in one process unless asked otherwise: starting an
interpreter per part (about 0.3 s) would cost more than it saves.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from multiprocessing import get_context

from ise_es.errors import ConfigError
from ise_es.projections.export import Exporter, ExportOptions, ExportShare
from ise_es.projections.onepass import OnePass, PartCounts, ReadModel
from ise_es.projections.session import SESSION_EVENT_TYPES
from ise_es.store.base import EventStore

__all__ = ["MIN_EVENTS", "PartTask", "StoreOpener", "default_workers", "run_part", "run_pass"]

StoreOpener = Callable[[str], EventStore]
"""Opens a store by URL in a part's process: the composition root's choice of implementation
(`ise_es.store.sql.open_store`), handed down because nothing below it picks one. A module-level
function, so that it pickles by name."""

MIN_EVENTS = 200_000
"""Events to read below which a pass is not split (about 5 s of one core on this machine)."""
MAX_AUTO_WORKERS = 4
"""Each part scans the whole log for its streams (SQLite has no index on stream number
modulo k), so past a few parts the reads cost more than the folding they share."""


def default_workers() -> int:
    """The parts of a split pass when none is asked for: the cores, up to MAX_AUTO_WORKERS."""
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_WORKERS))


@dataclass(frozen=True, slots=True)
class PartTask:
    """Everything a spawned part needs (pickled to it)."""

    opener: StoreOpener
    url: str
    part: tuple[int, int]
    until: int
    models: Sequence[ReadModel]
    export: ExportOptions | None
    export_types: tuple[str, ...]
    spool: str | None
    """The file the part's export lines go to (created by the parent, which removes it)."""


@dataclass(frozen=True, slots=True)
class PartResult:
    counts: PartCounts
    export: ExportShare | None


def run_part(task: PartTask) -> PartResult:
    """One part of a split pass, in a process of its own (its own store connection)."""
    with ExitStack() as stack:
        store = task.opener(task.url)
        stack.callback(store.close)
        one = OnePass(store, task.models)
        exporter = None
        if task.export is not None and task.spool is not None:
            spool = stack.enter_context(open(task.spool, "wb"))
            exporter = Exporter(task.export, spool, os.path.dirname(task.spool))
        one.run(
            exporter.session if exporter is not None else None,
            export_types=task.export_types,
            part=task.part,
            until=task.until,
        )
        share = exporter.share(task.spool) if exporter is not None and task.spool else None
        return PartResult(counts=one.counts(), export=share)


def run_pass(
    one: OnePass,
    exporter: Exporter | None = None,
    *,
    export_types: tuple[str, ...] = SESSION_EVENT_TYPES,
    workers: int | None = None,
    opener: StoreOpener | None = None,
) -> int:
    """`one.run(...)` feeding `exporter`, split among `workers` processes that open the store
    with `opener`; returns the last position read. With `workers` None, `default_workers()`
    of them when the log holds MIN_EVENTS or more to read (and an opener is given), else one.

    Raises:
        ConfigError: `workers` > 1 without an opener.
    """
    if opener is None and workers is not None and workers > 1:
        raise ConfigError(f"{workers} workers need a store opener for their processes")
    sink = exporter.session if exporter is not None else None
    parts = 1 if opener is None else workers if workers is not None else default_workers()
    until = one.store.last_position() if parts > 1 else 0
    # Positions estimate the events to read (PostgreSQL's sequence may leave gaps).
    small = until - one.start(export=exporter is not None) < MIN_EVENTS
    if opener is None or parts <= 1 or until == 0 or (workers is None and small):
        return one.run(sink, export_types=export_types)
    started = time.perf_counter()
    with _spools(exporter, parts - 1) as spools:
        tasks = [
            PartTask(
                opener=opener,
                url=one.store.url,
                part=(k, parts),
                until=until,
                models=[c.model for c in one.consumers],
                export=exporter.options if exporter is not None else None,
                export_types=export_types,
                spool=spools[k - 1] if spools else None,
            )
            for k in range(1, parts)
        ]
        with ProcessPoolExecutor(parts - 1, mp_context=get_context("spawn")) as pool:
            futures: list[Future[PartResult]] = [pool.submit(run_part, t) for t in tasks]
            try:
                one.run(sink, export_types=export_types, part=(0, parts), until=until)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            results = [f.result() for f in futures]
        if exporter is not None:
            for r in results:
                if r.export is not None:
                    exporter.absorb(r.export)
    one.advance(until, [r.counts for r in results], time.perf_counter() - started)
    return until


@contextmanager
def _spools(exporter: Exporter | None, count: int) -> Iterator[list[str]]:
    """`count` empty files beside the exporter's spool for the other parts' lines; removed
    on the way out whatever happened."""
    paths: list[str] = []
    try:
        if exporter is not None:
            for _ in range(count):
                fd, path = tempfile.mkstemp(dir=exporter.spool_dir, prefix=".ise-es-part.")
                os.close(fd)
                paths.append(path)
        yield paths
    finally:
        for path in paths:
            with suppress(FileNotFoundError):
                os.unlink(path)
