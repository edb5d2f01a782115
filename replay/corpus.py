"""`ise-es replay --all`: every (matching) session replayed, `workers` at a time, each in its own
sandbox, and a summary of outcomes and divergence causes (data: ise_es/commands/replay.py shows
the progress and prints the summary)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ise_es.errors import IseEsError
from ise_es.events import SessionEnded, SessionStarted
from ise_es.store.base import EventStore
from replay.model import ReplayReport
from replay.report import report_to_builtins
from replay.runner import ReplayOptions, replay_session

__all__ = [
    "OUTCOMES",
    "CorpusReport",
    "outcome_of",
    "replay_all",
    "select_sessions",
]

OUTCOMES = ("reproducible", "equivalent", "diverged", "failed")
TOP_CAUSES = 8


def outcome_of(report: ReplayReport) -> str:
    """reproducible (every step identical) | equivalent | diverged | failed (could not run, or
    steps could not be checked)."""
    return {"reproduced": "reproducible", "equivalent": "equivalent", "diverged": "diverged"}.get(
        report.status, "failed"
    )


@dataclass
class CorpusReport:
    reports: list[ReplayReport] = field(default_factory=list)
    seconds: float = 0.0
    imported_skipped: int = 0
    """Imported sessions left out: they never ran in an ise-es sandbox (no template)."""

    def outcomes(self) -> Counter[str]:
        return Counter(outcome_of(r) for r in self.reports)

    def divergence_causes(self) -> Counter[str]:
        """`tool field` of each diverged difference that is not after an earlier divergence,
        counted once per session: the root causes, not their consequences."""
        causes: Counter[str] = Counter()
        for report in self.reports:
            seen: set[str] = set()
            for step in report.steps:
                if step.after_divergence:
                    continue
                for d in step.differences:
                    if d.status == "diverged":
                        seen.add(f"{step.tool} {d.field.split(':', 1)[0]}")
            causes.update(seen)
        return causes

    def normalizers_fired(self) -> Counter[str]:
        """Sessions in which each normalizer made a step equivalent."""
        fired: Counter[str] = Counter()
        for report in self.reports:
            fired.update({n for s in report.steps for n in s.normalizers_fired})
        return fired

    def failures(self) -> Counter[str]:
        return Counter(_clip(r.reason, 100) for r in self.reports if outcome_of(r) == "failed")

    @property
    def exit_code(self) -> int:
        if any(r.aborted for r in self.reports):
            return 2
        return 1 if any(r.exit_code for r in self.reports) else 0

    def summary(self) -> dict[str, Any]:
        steps = sum(len(r.steps) for r in self.reports)
        good = sum(
            r.counts.get("identical", 0) + r.counts.get("equivalent", 0) for r in self.reports
        )
        return {
            "sessions": len(self.reports),
            "outcomes": {k: self.outcomes().get(k, 0) for k in OUTCOMES},
            "steps": steps,
            "step_determinism": good / steps if steps else None,
            "divergence_causes": dict(self.divergence_causes().most_common(TOP_CAUSES)),
            "normalizers_fired": dict(self.normalizers_fired().most_common()),
            "failures": dict(self.failures().most_common(TOP_CAUSES)),
            "imported_skipped": self.imported_skipped,
            "seconds": round(self.seconds, 3),
            "exit_code": self.exit_code,
        }

    def to_json(self) -> str:
        return msgspec.json.encode(
            {"summary": self.summary(), "sessions": [report_to_builtins(r) for r in self.reports]}
        ).decode()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def select_sessions(
    store: EventStore, *, status: str | None = None, include_imported: bool = True
) -> list[str]:
    """Session stream ids in the order they were created; `status` filters on how the session
    ended (`running` for sessions with no SessionEnded, e.g. a recorder killed with -9).
    Imported sessions (provenance `imported`) ran outside any ise-es sandbox.

    The stream table is the list (it is read committed); the catch-up read only saves reading
    each stream's first and last event. On PostgreSQL a catch-up read stops below the oldest
    open transaction on the server, so a session committed a moment ago may not be in it yet.
    """
    started: dict[str, SessionStarted] = {}
    ended: dict[str, str] = {}
    for stored in store.iter_all(types=["session_started", "session_ended"], batch=5000):
        if isinstance(stored.data, SessionStarted):
            started[stored.stream_id] = stored.data
        elif isinstance(stored.data, SessionEnded):
            ended[stored.stream_id] = stored.data.status
    out: list[str] = []
    for info in sorted(store.streams("session-"), key=lambda i: (i.created_at, i.stream_id)):
        stream = info.stream_id
        if stream not in started:
            head = store.read_stream(stream, 1, to_version=1)
            if not head or not isinstance(head[0].data, SessionStarted):
                continue
            started[stream] = head[0].data
        if stream not in ended:
            last = store.read_stream(stream, info.version, to_version=info.version)
            if last and isinstance(last[0].data, SessionEnded):
                ended[stream] = last[0].data.status
        if status is not None and ended.get(stream, "running") != status:
            continue
        if not include_imported and started[stream].provenance.get("imported"):
            continue
        out.append(stream)
    return out


def replay_all(
    store: EventStore,
    options: ReplayOptions | None = None,
    *,
    status: str | None = None,
    workers: int = 1,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[ReplayReport], None] | None = None,
) -> CorpusReport:
    """Replay every matching session, `workers` at a time (each its own sandbox).

    A session that cannot be read is a `failed` report, never a stopped run.
    """
    began = time.monotonic()
    streams = select_sessions(store, status=status, include_imported=False)
    imported = len(select_sessions(store, status=status)) - len(streams)
    results: list[ReplayReport | None] = [None] * len(streams)

    def run(i: int) -> None:
        stream = streams[i]
        if on_start is not None:
            on_start(stream)
        try:
            report = replay_session(store, stream, options)
        except IseEsError as e:
            report = ReplayReport(
                session_id=stream.removeprefix("session-"),
                source_stream=stream,
                source_version=0,
                aborted=True,
                reason=f"{type(e).__name__}: {e}",
            )
        results[i] = report
        if on_done is not None:
            on_done(report)

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="replay")
    try:
        for future in [pool.submit(run, i) for i in range(len(streams))]:
            future.result()
    except BaseException:
        # Ctrl-C: sessions not started yet are dropped; running ones finish their step loop.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return CorpusReport(
        [r for r in results if r is not None], time.monotonic() - began, imported_skipped=imported
    )
