"""`ise-es record` and `ise-es worker`: recording as a fleet job.

`record` enqueues its input and works the queue here until those items are done; `worker`
works whatever is queued, on any machine that reaches the store (`ise-es queue`, in queue.py,
shows and re-queues). The library does the work (ise_es/fleet/); this module parses, shows
progress and prints.
"""

from __future__ import annotations

import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import (
    apply,
    role_options,
    sandbox_option,
    templates_dir_option,
    web_options,
    workers_option,
)

if TYPE_CHECKING:
    from rich.console import Console

    from ise_es.fleet.inputs import RecordInput
    from ise_es.fleet.record import RecordRun
    from ise_es.fleet.spec import MachineOverrides, WorkSpec
    from ise_es.fleet.worker import Worker, WorkerOptions, WorkerReport
    from ise_es.store.base import EventStore, Lease

__all__ = ["record_command", "worker_command"]

F = TypeVar("F", bound=Callable[..., Any])


def _fleet_options() -> list[Callable[[F], F]]:
    return [
        workers_option(
            default=1,
            maximum=256,
            help="Sessions recorded at once by this process, each in its own sandbox.",
        ),
        click.option(
            "--lease-seconds",
            type=click.FloatRange(1),
            default=60.0,
            show_default=True,
            help="Lease length; renewed by heartbeat every third of it.",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(1),
            default=3,
            show_default=True,
            help="Infrastructure failures (endpoint down, sandbox failure, crash, lost lease) "
            "an item may have before it is `failed`.",
        ),
        click.option(
            "--backoff-seconds",
            type=click.FloatRange(0),
            default=10.0,
            show_default=True,
            help="First retry delay after an infrastructure failure; doubles per failure.",
        ),
        click.option(
            "--drain-timeout",
            type=click.FloatRange(0),
            default=60.0,
            show_default=True,
            help="On SIGTERM: seconds sessions in flight may take to finish before they are "
            "stopped.",
        ),
    ]


def _worker_options(
    workers: int,
    lease_seconds: float,
    max_attempts: int,
    backoff_seconds: float,
    drain_timeout: float,
    **extra: Any,
) -> WorkerOptions:
    from ise_es.fleet.worker import WorkerOptions

    return WorkerOptions(
        concurrency=workers,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
        drain_timeout=drain_timeout,
        poll_seconds=min(1.0, lease_seconds / 4),
        **extra,
    )


# ----------------------------------------------------------------------------- record


@click.command("record")
@db_option
@click.option(
    "--scenario",
    "scenario",
    type=click.Path(path_type=Path),
    help="A scenario file or a directory of them (the offline scripted backend); `shipped` "
    "or a shipped scenario's name for those that come with ise-es.",
)
@click.option(
    "--intents",
    "intents",
    type=click.Path(path_type=Path),
    help="An intents JSONL file in the reference schema (needs --agent-model, --user-model).",
)
@apply(_fleet_options())
@sandbox_option("sandbox", default="local")
@click.option(
    "--template", default=None, help="Workspace template (default: the scenario's, else empty)."
)
@templates_dir_option()
@click.option("--max-turns", type=int, default=12, show_default=True, help="User turn cap.")
@click.option("--max-steps", type=int, default=30, show_default=True, help="Agent steps per turn.")
@click.option(
    "--system-prompt",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Agent system prompt file (default: the shipped one).",
)
@click.option("--skip-invalid", is_flag=True, help="Skip broken intent lines instead of stopping.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--enqueue-only", is_flag=True, help="Only put the items in the queue for `ise-es worker`."
)
@click.option("--force", is_flag=True, help="Record again items already recorded (new attempt).")
@click.option(
    "--intents-per-session",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Intents one session works through one after another (same workspace), each to its "
    "own completion.",
)
@click.option(
    "--append-queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Query-only JSONL lines; when a session completes, one of them is asked as a last "
    "user turn.",
)
@apply(role_options("agent") + role_options("user"))
@apply(web_options())
@reports_errors
def record_command(db_url: str, enqueue_only: bool, force: bool, **options: Any) -> None:
    """Record sessions: user simulator <-> agent, every tool call executed for real.

    Enqueues the input's intents or scenarios in the store's work queue (an item per id and
    content digest: the same content again is a no-op, edited content is recorded anew), then
    works the queue here until those items are done. Resumable: re-running skips what was
    recorded; sessions cut off by a crash are closed `interrupted` and recorded again. Other
    machines can help with `ise-es worker` on the same --db.

    \b
    Example:
        ise-es record --scenario shipped --db sqlite:///out/demo.db
        ise-es record --intents intents.jsonl --workers 16 \\
            --agent-model qwen3-8b --agent-base-url http://127.0.0.1:8000/v1 \\
            --user-model qwen3-8b --user-base-url http://127.0.0.1:8000/v1
        ise-es record --intents intents.jsonl --enqueue-only --db postgresql://... \\
            --agent-model qwen3-8b --user-model qwen3-8b
        ise-es record --intents queries.jsonl --agent-model qwen3-8b   # query-only lines
        ise-es record --intents intents.jsonl --intents-per-session 3 \\
            --append-queries queries.jsonl --agent-model qwen3-8b --user-model qwen3-8b
    """
    from rich.console import Console

    from ise_es.fleet.inputs import build_specs
    from ise_es.fleet.spec import MachineOverrides

    console = Console(stderr=True)
    fleet = {k: options.pop(k) for k in _FLEET_NAMES}
    given = _record_input(db_url, options)
    specs = build_specs(given, os.environ, warn=lambda p: console.print(f"[yellow]skipped[/] {p}"))
    machine = MachineOverrides(templates_dir=given.templates_dir, environ=os.environ, db_url=db_url)
    with opened_store(db_url) as store:
        run = _record(store, specs, machine, _worker_options(**fleet), force, enqueue_only, console)
        console.print(_enqueued_line(run))
        if run.report is None:
            return
        _print_summary(run.report, console, skipped=run.already_done)
        rows = store.queue.items(item_ids=run.enqueued.item_ids)
    if any(r.state == "failed" or (r.state == "done" and r.status == "error") for r in rows):
        sys.exit(1)


def _record_input(db_url: str, options: dict[str, Any]) -> RecordInput:
    """The `record` options as the fleet's input; what is left in `options` (the `--ROLE-*`
    values) are the roles."""
    from ise_es.commands.options import web_settings
    from ise_es.fleet.inputs import RecordInput

    web = web_settings(options, db_url=db_url, environ=os.environ)
    templates_dir: Path | None = options.pop("templates_dir")
    system_prompt: Path | None = options.pop("system_prompt")
    return RecordInput(
        scenario_path=options.pop("scenario"),
        intents_path=options.pop("intents"),
        backend=options.pop("sandbox"),
        template=options.pop("template"),
        templates_dir=str(templates_dir) if templates_dir else None,
        max_turns=options.pop("max_turns"),
        max_steps=options.pop("max_steps"),
        system_prompt=system_prompt.read_text() if system_prompt else "",
        skip_invalid=options.pop("skip_invalid"),
        seed=options.pop("seed"),
        intents_per_session=options.pop("intents_per_session"),
        append_queries=options.pop("append_queries"),
        web=web,
        roles=options,
    )


def _record(
    store: EventStore,
    specs: list[WorkSpec],
    machine: MachineOverrides,
    options: WorkerOptions,
    force: bool,
    enqueue_only: bool,
    console: Console,
) -> RecordRun:
    """Enqueue the specs and (unless `enqueue_only`) work the queue until they are done, with
    the live line on `console`; SIGTERM drains, Ctrl-C stops."""
    from ise_es.fleet.record import record_specs

    progress = _Progress(console, total=len(specs))
    with progress.shown(), _drain_on_sigterm() as wire, _stops_on_ctrl_c(console):
        run = record_specs(
            store,
            specs,
            machine=machine,
            options=options,
            force=force,
            enqueue_only=enqueue_only,
            on_event=progress.on_event,
            on_start=progress.on_start,
            on_done=progress.on_done,
            worker_ready=wire,
        )
        progress.skip(run.already_done)
    return run


def _enqueued_line(run: RecordRun) -> str:
    enqueued = run.enqueued
    line = f"queued {len(enqueued.added)} new, {enqueued.unchanged} unchanged"
    if enqueued.superseded:
        line += f", {len(enqueued.superseded)} older versions superseded"
    if run.retried:
        line += f", {run.retried} failed ones queued again"
    return line


_FLEET_NAMES = ("workers", "lease_seconds", "max_attempts", "backoff_seconds", "drain_timeout")


# ----------------------------------------------------------------------------- worker


def _machine_role_options(role: str) -> list[Callable[[F], F]]:
    return [
        click.option(
            f"--{role}-base-url",
            default=None,
            help=f"Where this machine reaches the {role} model (default: as enqueued).",
        ),
        click.option(
            f"--{role}-api-key-env",
            default=None,
            help=f"Environment variable holding this machine's {role} API key; `none` for no "
            "key (default: as enqueued).",
        ),
        click.option(f"--{role}-timeout", type=float, default=None),
        click.option(f"--{role}-retries", type=int, default=None),
    ]


@click.command("worker")
@db_option
@apply(_fleet_options())
@click.option("--until-empty", is_flag=True, help="Exit when nothing is queued or leased.")
@click.option(
    "--max-sessions", type=click.IntRange(1), default=None, help="Exit after this many sessions."
)
@click.option("--worker-id", default=None, help="Name in `ise-es queue` (default: host-pid).")
@templates_dir_option("Where this machine keeps templates (looked up before the shipped ones).")
@apply(_machine_role_options("agent") + _machine_role_options("user"))
@reports_errors
def worker_command(
    db_url: str,
    until_empty: bool,
    max_sessions: int | None,
    worker_id: str | None,
    templates_dir: Path | None,
    **options: Any,
) -> None:
    """Work the store's queue: claim items, record them, settle them by the retry policy.

    Runs anywhere that reaches the store (PostgreSQL for many machines). The models, sandbox
    and limits come with each item (set at enqueue time); this machine's options say where it
    reaches the endpoints. Without --until-empty it waits for new work. SIGTERM drains (no new
    claims, sessions in flight get --drain-timeout), Ctrl-C stops within seconds.

    \b
    Example:
        ise-es worker --db postgresql://ise:pw@10.0.0.5/corpus --workers 32
        ise-es worker --db sqlite:///corpus.db --until-empty \\
            --agent-base-url http://gpu7:8000/v1 --user-base-url http://gpu7:8000/v1
    """
    from rich.console import Console

    from ise_es.fleet.record import planner_for
    from ise_es.fleet.spec import MachineOverrides
    from ise_es.fleet.worker import Worker, worker_info

    console = Console(stderr=True)
    fleet = {k: options.pop(k) for k in _FLEET_NAMES}
    machine = MachineOverrides(
        roles=_machine_roles(options),
        templates_dir=str(templates_dir) if templates_dir else None,
        environ=os.environ,
        db_url=db_url,
    )
    with opened_store(db_url) as store:
        info = worker_info(worker_id)
        progress = _Progress(console, total=None)
        worker = Worker(
            store,
            planner_for(machine),
            options=_worker_options(**fleet, until_empty=until_empty, max_sessions=max_sessions),
            info=info,
            on_event=progress.on_event,
            on_start=progress.on_start,
            on_done=progress.on_done,
        )
        console.print(f"worker {info.worker_id} on {_shown_url(db_url)}")
        with progress.shown(), _drain_on_sigterm() as wire, _stops_on_ctrl_c(console):
            wire(worker)
            report = worker.run()
    _print_summary(report, console, skipped=0)


def _machine_roles(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from ise_es.llm.roles import NO_KEY

    roles: dict[str, dict[str, Any]] = {}
    for role in ("agent", "user"):
        fields = {
            "base_url": options.get(f"{role}_base_url"),
            "api_key_env": options.get(f"{role}_api_key_env"),
            "timeout_s": options.get(f"{role}_timeout"),
            "max_retries": options.get(f"{role}_retries"),
        }
        chosen = {k: v for k, v in fields.items() if v is not None}
        if str(chosen.get("api_key_env", "")).lower() == NO_KEY:
            chosen["api_key_env"] = None
        roles[role] = chosen
    return roles


def _shown_url(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).render_as_string(hide_password=True) if "://" in url else url


# ----------------------------------------------------------------------------- display


@contextmanager
def _drain_on_sigterm() -> Iterator[Callable[[Worker], None]]:
    """SIGTERM drains the worker (the platform's stop: systemd, Kubernetes, Slurm)."""
    workers: list[Worker] = []

    def wire(worker: Worker) -> None:
        workers.append(worker)

    def on_term(_signum: int, _frame: Any) -> None:
        for worker in workers:
            worker.drain()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield wire
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _stops_on_ctrl_c(console: Console) -> Iterator[None]:
    """The worker has already stopped its sessions (`interrupted`) and released their leases
    when the KeyboardInterrupt gets here: say so and exit 130, no traceback."""
    try:
        yield
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: sessions in flight ended `interrupted` and went back to "
            "the queue; run the same command again to go on"
        )
        sys.exit(130)


class _Progress:
    """The live line of a recording: items settled, sessions in flight, retries, tool calls."""

    def __init__(self, console: Console, *, total: int | None) -> None:
        from ise_es.commands.progress import progress_display

        self._progress = progress_display("recording", console, bar=total is not None)
        self._task = self._progress.add_task("record", total=total, detail="")
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self.running = self.retried = self.failed = self.tool_calls = 0

    @contextmanager
    def shown(self) -> Iterator[None]:
        with self._progress:
            yield

    def skip(self, n: int) -> None:
        self._progress.update(self._task, advance=n, detail=self._detail())

    def _detail(self) -> str:
        rate = self.tool_calls / max(time.monotonic() - self._started, 1e-9)
        return (
            f"running {self.running}  retrying {self.retried}  failed {self.failed}  "
            f"tool calls {self.tool_calls} ({rate:.1f}/s)"
        )

    def on_event(self, event: Any) -> None:
        from ise_es.events import ToolCallFinished

        if isinstance(event, ToolCallFinished):
            with self._lock:
                self.tool_calls += 1
            self._progress.update(self._task, detail=self._detail())

    def on_start(self, _lease: Lease) -> None:
        with self._lock:
            self.running += 1
        self._progress.update(self._task, detail=self._detail())

    def on_done(self, _lease: Lease, _result: Any, state: str | None) -> None:
        with self._lock:
            self.running -= 1
            self.retried += state == "queued"
            self.failed += state == "failed"
        ended = state in ("done", "failed", "superseded")
        self._progress.update(self._task, advance=1 if ended else 0, detail=self._detail())


def _print_summary(report: WorkerReport, console: Console, *, skipped: int) -> None:
    from rich.table import Table

    table = Table(title="recording summary", show_header=True, box=None)
    table.add_column("sessions ended")
    table.add_column("count", justify="right")
    for status, n in sorted(report.statuses.items()):
        table.add_row(status, str(n))
    if skipped:
        table.add_row("skipped (already recorded)", str(skipped))
    for state, label in (
        ("queued", "items queued again (retry)"),
        ("failed", "items failed (out of attempts)"),
        ("lost", "leases lost"),
    ):
        if report.settled.get(state):
            table.add_row(label, str(report.settled[state]))
    if report.reclaimed:
        table.add_row("expired leases reclaimed", str(report.reclaimed))
    console.print(table)
    line = (
        f"{sum(report.statuses.values())} sessions, {report.tool_calls} tool calls, "
        f"{report.tokens} tokens, {report.seconds:.1f} s wall"
    )
    latencies = sorted(report.append_latencies)
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        p50 = statistics.median(latencies)
        line += f"; event append p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    console.print(line)
    for session_id, reason in report.errors:
        console.print(f"[red]error[/] session {session_id}: {reason}")
