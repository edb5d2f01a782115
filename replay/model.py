"""What a replay produces: per-field differences, per-step verdicts and the session report.

These are the shapes of `ise-es replay --json` and of `StepReplayed.differences`; they are
msgspec Structs so that the JSON is the same wherever it is written.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Difference",
    "ReplayReport",
    "ReplayStatus",
    "StepResult",
    "Verdict",
    "Where",
    "exit_code_for",
]

Verdict = Literal["identical", "equivalent", "diverged", "missing"]
ReplayStatus = Literal["reproduced", "equivalent", "diverged", "failed"]


class Where(msgspec.Struct, frozen=True, kw_only=True):
    """A line where normalization made the two sides equal."""

    line: int
    """1-based line of the field's text."""
    recorded: str
    replayed: str
    normalizers: list[str]


class Difference(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One compared field that was not byte-identical."""

    field: str
    """exit_code, signal, timed_out, stdout, stderr, result_text, http, recording, or
    fs:<path> for one path of the workspace diff."""
    status: Literal["diverged", "equivalent", "missing"]
    recorded: str | None = None
    """Short values (exit codes, flags, digests); long texts are in `diff`."""
    replayed: str | None = None
    diff: str = ""
    """Unified diff, recorded -> replayed (of the normalized texts when normalizers fired)."""
    normalizers: list[str] = []
    """Normalizers that fired on this field (equivalent: the ones that made it equal)."""
    where: list[Where] = []
    note: str = ""
    replayed_digest: str | None = None
    """Blob digest of the replayed bytes when they diverged (stored with the replay stream)."""

    def as_event_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


class StepResult(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    call_id: str
    tool: str
    arguments: str
    turn: int
    verdict: Verdict
    differences: list[Difference] = []
    normalizers_fired: list[str] = []
    after_divergence: bool = False
    """An earlier step diverged, so this one's differences may be consequences of it."""
    recorded_ms: float = 0.0
    replayed_ms: float = 0.0


class ReplayReport(msgspec.Struct, kw_only=True):
    """The outcome of replaying one session (mutable while the replay runs)."""

    session_id: str
    source_stream: str
    source_version: int
    replay_id: str | None = None
    """None when the replay could not start (nothing was recorded)."""
    recorded_backend: str = ""
    sandbox_backend: str = ""
    template: str = ""
    recorded_template_digest: str = ""
    template_digest: str = ""
    normalizers: list[str] = []
    status: ReplayStatus = "failed"
    counts: dict[str, int] = {}
    determinism: float = 0.0
    first_divergence: int | None = None
    """Index (0-based, as recorded) of the first diverged step."""
    steps: list[StepResult] = []
    skipped: int = 0
    """Recorded steps not replayed (--stop-at-first after a divergence)."""
    notes: list[str] = []
    reason: str = ""
    aborted: bool = False
    """The replay could not start or could not go on (template refused, sandbox died)."""
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return exit_code_for(self)


def exit_code_for(report: ReplayReport) -> int:
    """0: every step identical or equivalent; 1: a step diverged or could not be checked
    (status diverged, or failed with `missing` steps); 2: the replay could not run to the end."""
    if report.aborted:
        return 2
    return 0 if report.status in ("reproduced", "equivalent") else 1
