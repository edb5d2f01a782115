"""The human report of one replay (`ise-es replay SESSION`): header, notes, a table of steps,
the first divergence with its diffs, later ones marked as possible consequences, counts and
the determinism score. The JSON one is `replay.report.report_json`.

Imported by the replay command when it prints, so rich loads only then.
"""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from replay.model import Difference, ReplayReport, StepResult

__all__ = ["print_report"]

_COLOURS = {
    "identical": "green",
    "equivalent": "cyan",
    "diverged": "bold red",
    "missing": "yellow",
    "reproduced": "green",
    "failed": "bold yellow",
}
MAX_DIVERGED_SHOWN = 10


def _clip(text: str, limit: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _summary(diff: Difference) -> str:
    if diff.status == "equivalent":
        lines = ", ".join(str(w.line) for w in diff.where)
        return f"{diff.field} ~ {', '.join(diff.normalizers)}" + (
            f" (line {lines})" if lines else ""
        )
    if diff.recorded is not None or diff.replayed is not None:
        return f"{diff.field}: {diff.recorded} -> {diff.replayed}"
    return f"{diff.field} {diff.status}" + (f": {_clip(diff.note, 80)}" if diff.note else "")


def _verdict_text(step: StepResult) -> Text:
    text = Text(step.verdict, style=_COLOURS[step.verdict])
    if step.after_divergence and step.verdict != "identical":
        text.append(" (after a divergence)", style="dim")
    return text


def _steps_table(report: ReplayReport) -> Table:
    table = Table(show_header=True, header_style="bold", expand=False)
    table.add_column("step", justify="right")
    table.add_column("tool")
    table.add_column("arguments", overflow="fold", max_width=48)
    table.add_column("verdict")
    table.add_column("what differed", overflow="fold")
    table.add_column("ms rec/rep", justify="right")
    for step in report.steps:
        table.add_row(
            str(step.index),
            step.tool,
            escape(_clip(step.arguments, 96)),
            _verdict_text(step),
            escape("; ".join(_summary(d) for d in step.differences)),
            f"{step.recorded_ms:.0f}/{step.replayed_ms:.0f}",
        )
    return table


def _difference_block(diff: Difference) -> list[RenderableType]:
    head = Text(f"  {diff.field}: ", style="bold")
    head.append(diff.status, style=_COLOURS.get(diff.status, ""))
    if diff.recorded is not None or diff.replayed is not None:
        head.append(f"  recorded {diff.recorded}  replayed {diff.replayed}")
    out: list[RenderableType] = [head]
    if diff.normalizers:
        out.append(Text(f"    normalizers applied: {', '.join(diff.normalizers)}", style="dim"))
    if diff.note:
        out.append(Text(f"    {diff.note}", style="yellow"))
    if diff.diff:
        out.append(Syntax(diff.diff, "diff", theme="ansi_dark", word_wrap=True, padding=(0, 4)))
    return out


def _step_block(step: StepResult, title: str) -> Group:
    parts: list[RenderableType] = [
        Text.assemble(
            (title, "bold"),
            f": step {step.index} (turn {step.turn}) ",
            (step.tool, "bold"),
            f" {_clip(step.arguments, 200)}",
        )
    ]
    for diff in step.differences:
        if diff.status != "equivalent":
            parts.extend(_difference_block(diff))
    return Group(*parts)


def print_report(report: ReplayReport, console: Console | None = None) -> None:
    """The human report: header, notes, a table of steps, the first divergence with its diffs,
    later divergences (marked as possible consequences), counts and the determinism score."""
    console = console or Console()
    console.print(
        Text.assemble(
            ("Replay ", "bold"),
            (report.replay_id or "(not started)", "bold"),
            f" of session {report.session_id} (stream version {report.source_version})",
        )
    )
    console.print(
        f"  sandbox {report.sandbox_backend} (recorded on {report.recorded_backend or '?'}), "
        f"template {escape(report.template)} {report.template_digest or '-'}",
        highlight=False,
    )
    console.print(f"  normalizers: {', '.join(report.normalizers) or 'none'}", highlight=False)
    for note in report.notes:
        console.print(Text(f"  note: {note}", style="yellow"))
    if report.steps:
        console.print(_steps_table(report))
    diverged = [s for s in report.steps if s.verdict in ("diverged", "missing")]
    for n, step in enumerate(diverged[:MAX_DIVERGED_SHOWN]):
        if step.verdict == "diverged" and step.index == report.first_divergence:
            title = "First divergence"
        elif step.verdict == "missing":
            title = "Could not check"
        else:
            title = "Later divergence (possibly a consequence)"
        console.print(_step_block(step, title))
        if n == MAX_DIVERGED_SHOWN - 1 and len(diverged) > MAX_DIVERGED_SHOWN:
            console.print(f"... {len(diverged) - MAX_DIVERGED_SHOWN} more (see --json)")
    counts = ", ".join(f"{k} {v}" for k, v in report.counts.items())
    checked = sum(report.counts.values())
    good = report.counts.get("identical", 0) + report.counts.get("equivalent", 0)
    line = Text(f"Steps: {counts or 'none'}")
    if report.skipped:
        line.append(f", not replayed {report.skipped}")
    line.append(f"; determinism {100 * report.determinism:.1f}% ({good}/{checked} steps)")
    console.print(line)
    status = Text("Status: ")
    status.append(report.status, style=_COLOURS.get(report.status, ""))
    if report.reason:
        status.append(f" ({report.reason})")
    status.append(f" in {report.seconds:.2f} s")
    if report.replay_id:
        status.append(f"; recorded as stream replay-{report.replay_id}", style="dim")
    console.print(status)
