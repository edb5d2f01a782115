"""`ise-es replay`: one session or the whole corpus replayed, shown for people (rich, with a
progress display on stderr) or as JSON, and the exit status.

The replay stage (`replay.runner`, `replay.corpus`) returns reports and calls back per step or
per session; this module owns the store, the progress display and the printing.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import (
    SESSION_STATUSES,
    sandbox_option,
    templates_dir_option,
    workers_option,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ise_es.store.base import EventStore
    from replay.corpus import CorpusReport
    from replay.model import ReplayReport
    from replay.runner import ReplayOptions

__all__ = ["print_corpus_summary", "replay_command"]


@click.command("replay")
@db_option
@click.argument("session_id", required=False)
@click.option("--all", "all_sessions", is_flag=True, help="Replay every session (see --status).")
@click.option(
    "--status",
    type=click.Choice([*SESSION_STATUSES, "running"]),
    default=None,
    help="With --all: only sessions that ended so (running: never ended, e.g. after kill -9).",
)
@workers_option(
    default=1, maximum=64, help="With --all: sessions replayed at once, each in its own sandbox."
)
@sandbox_option(
    "backend",
    default=None,
    help="Replay on this backend (default: the one the session was recorded on).",
)
@templates_dir_option()
@click.option(
    "--allow-template-change",
    is_flag=True,
    help="Replay even when the template's digest changed since recording, and report the "
    "differences (default: refuse).",
)
@click.option(
    "--normalize",
    multiple=True,
    metavar="NAME",
    help="Switch a normalizer on (after --no-normalize all). Names: ansi, temp-paths, "
    "timestamps, durations, ids, pids, hostnames.",
)
@click.option(
    "--no-normalize",
    multiple=True,
    metavar="NAME",
    help="Switch a normalizer off; `all` for every one (all are on by default).",
)
@click.option("--stop-at-first", is_flag=True, help="Stop at the first diverged step.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON on stdout.")
@reports_errors
def replay_command(
    db_url: str,
    session_id: str | None,
    all_sessions: bool,
    status: str | None,
    workers: int,
    backend: str | None,
    templates_dir: Path | None,
    allow_template_change: bool,
    normalize: tuple[str, ...],
    no_normalize: tuple[str, ...],
    stop_at_first: bool,
    as_json: bool,
) -> None:
    """Re-execute recorded tool calls in a fresh sandbox and report every divergence.

    Each step is identical, equivalent (equal after normalizers, which are named) or diverged
    (with a diff). The replay is recorded as a replay-<id> stream; the session is never changed.
    Exit status: 0 every step identical or equivalent, 1 a step diverged or could not be
    checked, 2 the replay could not run.

    \b
    Example:
        ise-es replay 3f2a9c1e0b7d4e21
        ise-es replay 3f2a --no-normalize all --stop-at-first --json
        ise-es replay --all --status completed --workers 2
        ise-es replay 3f2a9c1e0b7d4e21 --sandbox docker
    """
    from ise_es.errors import ConfigError

    if all_sessions == (session_id is not None):
        raise ConfigError("give exactly one of SESSION_ID or --all")
    if not all_sessions and (status is not None or workers != 1):
        raise ConfigError("--status and --workers go with --all")
    options = _replay_options(
        backend, templates_dir, allow_template_change, normalize, no_normalize, stop_at_first
    )
    with opened_store(db_url) as store:
        if all_sessions:
            code = _replay_corpus(store, options, status=status, workers=workers, as_json=as_json)
        else:
            code = _replay_one(store, session_id or "", options, as_json=as_json)
    sys.exit(code)


def _replay_options(
    backend: str | None,
    templates_dir: Path | None,
    allow_template_change: bool,
    normalize: Sequence[str],
    no_normalize: Sequence[str],
    stop_at_first: bool,
) -> ReplayOptions:
    """Raises ConfigError for an unknown normalizer name."""
    from ise_es.errors import ConfigError
    from replay.normalize import select_normalizers
    from replay.runner import ReplayOptions

    try:
        names = select_normalizers(normalize, no_normalize)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return ReplayOptions(
        backend=backend,
        templates_dir=str(templates_dir) if templates_dir else None,
        allow_template_change=allow_template_change,
        normalizers=names,
        stop_at_first=stop_at_first,
    )


def _replay_one(
    store: EventStore, session_id: str, options: ReplayOptions, *, as_json: bool
) -> int:
    """One session, its steps counted on a transient bar. A replay that could not start is
    `Error: ...` and exit 2 (with --json the JSON report says why)."""
    from rich.console import Console

    from ise_es.commands.progress import progress_display
    from ise_es.commands.replay_report import print_report
    from replay.recorded import load_session
    from replay.report import report_json
    from replay.runner import replay_recorded

    session = load_session(store, session_id)
    progress = progress_display(
        f"replaying {session.session_id}",
        Console(stderr=True),
        detail=False,
        elapsed=False,
        transient=True,
    )
    task = progress.add_task("steps", total=len(session.steps))
    with progress:
        report = replay_recorded(
            store, session, options, on_step=lambda _step: progress.advance(task)
        )
    if as_json:
        click.echo(report_json(report))
    elif report.replay_id is None:
        click.echo(f"Error: {report.reason}", err=True)
        return 2
    else:
        print_report(report, Console())
    return report.exit_code


def _replay_corpus(
    store: EventStore,
    options: ReplayOptions,
    *,
    status: str | None,
    workers: int,
    as_json: bool,
) -> int:
    """Every matching session, a bar of sessions with the outcomes so far, then the summary
    and the store-wide determinism rate (or the JSON of every report)."""
    from rich.console import Console

    from replay.rate import determinism_rate

    corpus = _replay_all_shown(store, options, status=status, workers=workers)
    if as_json:
        click.echo(corpus.to_json())
        return corpus.exit_code
    console = Console()
    if not corpus.reports:
        console.print("no sessions to replay" + (f" with status {status}" if status else ""))
    print_corpus_summary(corpus, console)
    rate = determinism_rate(store)
    if rate.reproducible_rate is not None:
        console.print(
            f"store-wide, latest replay of each of {rate.sessions} sessions: "
            f"{100 * rate.reproducible_rate:.1f}% reproducible or equivalent",
            highlight=False,
        )
    return corpus.exit_code


def _replay_all_shown(
    store: EventStore, options: ReplayOptions, *, status: str | None, workers: int
) -> CorpusReport:
    """`replay_all` with a progress display on stderr: sessions done, outcomes, steps/s."""
    import threading
    import time
    from collections import Counter

    from rich.console import Console

    from ise_es.commands.progress import progress_display
    from replay.corpus import OUTCOMES, outcome_of, replay_all, select_sessions

    total = len(select_sessions(store, status=status, include_imported=False))
    lock = threading.Lock()
    tally: Counter[str] = Counter()
    steps = 0
    began = time.monotonic()
    progress = progress_display("replaying", Console(stderr=True))
    task = progress.add_task("replay", total=total, detail="")

    def on_done(report: ReplayReport) -> None:
        nonlocal steps
        with lock:
            tally[outcome_of(report)] += 1
            steps += len(report.steps)
            rate = steps / max(time.monotonic() - began, 1e-9)
            detail = "  ".join(f"{k} {tally[k]}" for k in OUTCOMES) + f"  ({rate:.1f} steps/s)"
        progress.update(task, advance=1, detail=detail)

    with progress:
        return replay_all(store, options, status=status, workers=workers, on_done=on_done)


def print_corpus_summary(corpus: CorpusReport, console: Console | None = None) -> None:
    """Outcomes, the most frequent divergence causes, the normalizers that fired, failures and
    the step determinism of a corpus replay."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    summary = corpus.summary()
    _print_counts(console, "replay summary", ("sessions", "count"), summary["outcomes"])
    if summary["divergence_causes"]:
        _print_counts(
            console,
            "most frequent divergence causes",
            ("tool field", "sessions"),
            summary["divergence_causes"],
        )
    if summary["normalizers_fired"]:
        console.print(
            "normalizers that made steps equivalent (sessions): "
            + ", ".join(f"{k} {v}" for k, v in summary["normalizers_fired"].items()),
            highlight=False,
        )
    if corpus.imported_skipped:
        console.print(
            f"{corpus.imported_skipped} imported session(s) left out: they never ran in an "
            "ise-es sandbox (replay one with --sandbox local to try)",
            highlight=False,
        )
    for reason, n in summary["failures"].items():
        console.print(f"[yellow]failed[/] x{n}: {escape(reason)}", highlight=False)
    rate = summary["step_determinism"]
    console.print(
        f"{summary['sessions']} sessions, {summary['steps']} steps, step determinism "
        + (f"{100 * rate:.1f}%" if rate is not None else "-")
        + f", {summary['seconds']:.1f} s wall",
        highlight=False,
    )


def _print_counts(
    console: Console, title: str, columns: tuple[str, str], counts: dict[str, int]
) -> None:
    from rich.table import Table

    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column(columns[0])
    table.add_column(columns[1], justify="right")
    for name, n in counts.items():
        table.add_row(name, str(n))
    console.print(table)
