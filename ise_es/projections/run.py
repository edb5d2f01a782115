"""What the projection commands run: catch the read models up, read them, report.

ise_es/commands/project.py opens the store and prints; everything here takes the store and
returns data (msgspec Structs).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ise_es.errors import ConfigError
from ise_es.projections.audit import AuditSummary, SessionAudit, load_lexicon, summarize
from ise_es.projections.export import ExportOptions, ExportReport, export_sft
from ise_es.projections.readmodel import (
    AuditModel,
    CatchUpResult,
    StatsModel,
    load_audits,
    load_replays,
    load_summaries,
)
from ise_es.projections.stats import CorpusStats, corpus_stats
from ise_es.store.base import EventStore

if TYPE_CHECKING:
    from ise_es.projections.onepass import ReadModel
    from ise_es.projections.parts import StoreOpener

__all__ = [
    "AllRun",
    "AuditRun",
    "StatsRun",
    "run_all",
    "run_audit",
    "run_export",
    "run_stats",
    "stats_to_json",
]


class StatsRun(msgspec.Struct, kw_only=True):
    stats: CorpusStats
    catch_up: CatchUpResult


class AuditRun(msgspec.Struct, kw_only=True):
    summary: AuditSummary
    flagged: list[SessionAudit]
    catch_up: CatchUpResult


def run_stats(
    store: EventStore,
    *,
    status: str = "completed",
    rebuild: bool = False,
    workers: int | None = None,
    opener: StoreOpener | None = None,
) -> StatsRun:
    """`project stats`: the stats read model caught up, then the corpus statistics of it.
    `workers` and `opener` split the read as `run_all` does."""
    return _stats_run(store, status, _caught(store, StatsModel(), rebuild, workers, opener))


def _caught(
    store: EventStore,
    model: ReadModel,
    rebuild: bool,
    workers: int | None,
    opener: StoreOpener | None,
) -> CatchUpResult:
    """`readmodel.catch_up`, the read split among processes on a large log (parts.py)."""
    from ise_es.projections.onepass import OnePass
    from ise_es.projections.parts import run_pass

    one = OnePass(store, [model], rebuild=rebuild)
    run_pass(one, workers=workers, opener=opener)
    return one.results()[0]


def run_export(
    store: EventStore,
    output: str | Path,
    options: ExportOptions,
    *,
    force: bool = False,
    workers: int | None = None,
    opener: StoreOpener | None = None,
) -> ExportReport:
    """`project sft-jsonl`: `export_sft`, its read split as `run_all` does."""
    from ise_es.projections.export import Exporter
    from ise_es.projections.onepass import OnePass
    from ise_es.projections.parts import run_pass

    one = OnePass(store, [])

    def split(exporter: Exporter, types: tuple[str, ...]) -> int:
        return run_pass(one, exporter, export_types=types, workers=workers, opener=opener)

    report = export_sft(store, output, options, force=force, sessions=split)
    report.parts = one.parts
    return report


def _stats_run(store: EventStore, status: str, caught: CatchUpResult) -> StatsRun:
    stats = corpus_stats(load_summaries(store), load_replays(store), status=status)
    return StatsRun(stats=stats, catch_up=caught)


def stats_to_json(run: StatsRun) -> dict[str, Any]:
    """The report as plain JSON data (without the per-trajectory value lists)."""
    data: dict[str, Any] = msgspec.to_builtins(run.stats)
    for key in ("user_turn_values", "dialogue_turn_values", "tool_call_values"):
        data.pop(key, None)
    data["read_model"] = msgspec.to_builtins(run.catch_up)
    return data


def run_audit(
    store: EventStore,
    *,
    lexicon: str | Path | None = None,
    status: str = "any",
    rebuild: bool = False,
    workers: int | None = None,
    opener: StoreOpener | None = None,
) -> AuditRun:
    """`project audit`: the audit read model caught up, its findings read and summarised.
    `workers` and `opener` split the read as `run_all` does."""
    model = AuditModel(load_lexicon(lexicon))
    return _audit_run(store, status, _caught(store, model, rebuild, workers, opener))


def _audit_run(store: EventStore, status: str, caught: CatchUpResult) -> AuditRun:
    audits = load_audits(store, status=status)
    return AuditRun(
        summary=summarize(audits), flagged=[a for a in audits if a.findings], catch_up=caught
    )


class AllRun(msgspec.Struct, kw_only=True):
    """`project all`: what each projection asked for made, from one read of the log."""

    export: ExportReport | None = None
    audit: AuditRun | None = None
    stats: StatsRun | None = None
    events_read: int = 0
    """Events the shared read decoded (0 when everything was up to date)."""
    parts: int = 1
    """Processes the read was split among."""
    seconds: float = 0.0


PROJECTIONS = ("export", "audit", "stats")


def run_all(
    store: EventStore,
    *,
    projections: Iterable[str] = PROJECTIONS,
    output: str | Path | None = None,
    options: ExportOptions | None = None,
    force: bool = False,
    lexicon: str | Path | None = None,
    audit_status: str = "any",
    stats_status: str = "completed",
    rebuild: bool = False,
    workers: int | None = None,
    opener: StoreOpener | None = None,
) -> AllRun:
    """Export, audit and stats (any of them) fed by one read of the log (onepass.py), split
    by stream among `workers` processes on a large log (parts.py; None: one per core), each
    opening the store with `opener` (none: one process).

    Raises:
        ConfigError: the export is asked for without an output file or its options.
    """
    import time

    from ise_es.projections.export import Exporter
    from ise_es.projections.onepass import OnePass
    from ise_es.projections.parts import run_pass

    started = time.perf_counter()
    wanted = set(projections)
    audit_model = AuditModel(load_lexicon(lexicon)) if "audit" in wanted else None
    stats_model = StatsModel() if "stats" in wanted else None
    models = [m for m in (audit_model, stats_model) if m is not None]
    result = AllRun()
    one = OnePass(store, models, rebuild=rebuild)
    ran = False

    def shared(exporter: Exporter, types: tuple[str, ...]) -> int:
        nonlocal ran
        ran = True
        return run_pass(one, exporter, export_types=types, workers=workers, opener=opener)

    if "export" in wanted:
        if output is None or options is None:
            raise ConfigError("the export needs an output file (-o) and its options")
        result.export = export_sft(store, output, options, force=force, sessions=shared)
    if not ran:  # no export, or its files were up to date: the models still catch up
        run_pass(one, workers=workers, opener=opener)
    caught = dict(zip([m.name for m in models], one.results(), strict=True))
    if audit_model is not None:
        result.audit = _audit_run(store, audit_status, caught[audit_model.name])
    if stats_model is not None:
        result.stats = _stats_run(store, stats_status, caught[stats_model.name])
    result.events_read = one.events_read
    result.parts = one.parts
    result.seconds = time.perf_counter() - started
    return result
