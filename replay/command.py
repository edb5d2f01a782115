"""What `ise-es replay` does once its options are parsed: one session or the whole corpus,
printed for people (rich) or as JSON, and the exit status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ise_es.errors import ConfigError, ReplayError
from ise_es.store.sql import open_store
from replay.corpus import print_corpus_summary, replay_all_with_progress
from replay.model import StepResult
from replay.normalize import select_normalizers
from replay.rate import determinism_rate
from replay.recorded import load_session
from replay.report import print_report, report_json
from replay.runner import ReplayOptions, replay_recorded

__all__ = ["run_replay"]


def run_replay(
    db_url: str,
    session_id: str | None,
    *,
    all_sessions: bool = False,
    status: str | None = None,
    workers: int = 1,
    backend: str | None = None,
    templates_dir: str | None = None,
    allow_template_change: bool = False,
    normalize: Sequence[str] = (),
    no_normalize: Sequence[str] = (),
    stop_at_first: bool = False,
    as_json: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the command; returns the exit status (0 all identical/equivalent, 1 a divergence or
    an unchecked step, 2 could not run).

    Raises:
        ConfigError: bad option combination or unknown normalizer.
        ReplayError: the single session's replay could not start (the message says why; with
            `as_json` the JSON report says it instead and 2 is returned).
        InvalidInput: no such session.
    """
    if all_sessions == (session_id is not None):
        raise ConfigError("give exactly one of SESSION_ID or --all")
    if not all_sessions and (status is not None or workers != 1):
        raise ConfigError("--status and --workers go with --all")
    try:
        names = select_normalizers(normalize, no_normalize)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    options = ReplayOptions(
        backend=backend,
        templates_dir=templates_dir,
        allow_template_change=allow_template_change,
        normalizers=names,
        stop_at_first=stop_at_first,
    )
    console = Console(file=out, soft_wrap=False) if out is not None else Console()
    err_console = Console(file=err, stderr=err is None)
    with open_store(db_url) as store:
        if all_sessions:
            corpus = replay_all_with_progress(
                store, options, status=status, workers=workers, console=err_console
            )
            if as_json:
                print(corpus.to_json(), file=out)
            else:
                if not corpus.reports:
                    console.print(
                        "no sessions to replay" + (f" with status {status}" if status else "")
                    )
                print_corpus_summary(corpus, console)
                rate = determinism_rate(store)
                if rate.reproducible_rate is not None:
                    console.print(
                        f"store-wide, latest replay of each of {rate.sessions} sessions: "
                        f"{100 * rate.reproducible_rate:.1f}% reproducible or equivalent",
                        highlight=False,
                    )
            return corpus.exit_code
        session = load_session(store, session_id or "")
        total = len(session.steps)
        progress = Progress(
            TextColumn(f"[bold]replaying {session.session_id}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            transient=True,
        )
        task = progress.add_task("steps", total=total)

        def on_step(_: StepResult) -> None:
            progress.advance(task)

        with progress:
            report = replay_recorded(store, session, options, on_step=on_step)
    if report.replay_id is None and not as_json:
        raise ReplayError(report.reason)
    if as_json:
        print(report_json(report), file=out)
    else:
        print_report(report, console)
    return report.exit_code
