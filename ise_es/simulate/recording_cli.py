"""What `ise-es record` needs beyond the batch recorder: work items from scenario or intents
files, per-role model clients from flags, a rich progress display and the closing summary."""

from __future__ import annotations

import os
import statistics
import threading
import time
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ise_es.errors import ConfigError
from ise_es.events import Event, ToolCallFinished
from ise_es.llm.base import ChatClient, RoleConfig
from ise_es.llm.roles import role_config_from_options
from ise_es.simulate.batch import BatchReport, WorkItem, record_batch
from ise_es.simulate.scenario import (
    Scenario,
    ScriptedAgentClient,
    ScriptedUserClient,
    load_scenarios,
)
from ise_es.simulate.session import SessionPlan, SessionResult
from ise_es.store.sql import SqlEventStore

__all__ = ["build_items", "role_configs", "run_with_progress"]


def role_configs(
    roles: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[RoleConfig, RoleConfig]:
    """The agent's and the user simulator's RoleConfig from the `--agent-*`/`--user-*` options.

    Raises:
        ConfigError: a model missing, or a key variable the user named that is not set.
    """
    for role in ("agent", "user"):
        if not roles.get(f"{role}_model"):
            raise ConfigError(f"--intents needs --{role}-model (and --{role}-base-url)")
    return (
        role_config_from_options("agent", roles, environ),
        role_config_from_options("user", roles, environ),
    )


def _openai_client(config: RoleConfig) -> ChatClient:
    from ise_es.llm.openai_client import OpenAIChatClient

    return OpenAIChatClient(config, environ=os.environ)


def build_items(
    *,
    scenario_path: Path | None,
    intents_path: Path | None,
    backend: str,
    template: str | None,
    max_turns: int,
    max_steps: int,
    system_prompt: str,
    skip_invalid: bool,
    seed: int,
    roles: Mapping[str, Any],
) -> list[WorkItem]:
    """Raises InvalidInput (naming file and line/field) or ConfigError."""
    items: list[WorkItem] = []
    if scenario_path is not None:
        for _, scenario in load_scenarios(scenario_path):
            # A seed tied to the scenario, not to its place in the directory, so the names the
            # tools make up (process sessions) stay the ones the scenario file refers to.
            scenario_seed = seed ^ zlib.crc32(scenario.id.encode())
            items.append(
                WorkItem(
                    scenario.id,
                    _scenario_planner(
                        scenario,
                        backend,
                        template,
                        max_turns,
                        max_steps,
                        system_prompt,
                        scenario_seed,
                    ),
                )
            )
        return items
    assert intents_path is not None
    from ise_es.intents.jsonl import parse_intents_file

    agent_config, user_config = role_configs(roles, os.environ)
    intents, problems = parse_intents_file(intents_path, skip_invalid=skip_invalid)
    for problem in problems:
        Console(stderr=True).print(f"[yellow]skipped[/] {problem}")
    for n, intent in enumerate(intents):
        metadata = intent.record.get("metadata")
        persona = metadata.get("persona") if isinstance(metadata, dict) else None

        def plan(
            attempt: int, intent: Any = intent, persona: Any = persona, n: int = n
        ) -> SessionPlan:
            return SessionPlan(
                intent_id=intent.intent_id,
                intent=intent.text,
                agent=_openai_client(agent_config),
                user=_openai_client(user_config),
                template=template or "empty",
                backend=backend,
                persona=persona if isinstance(persona, dict) else None,
                intent_record=intent.record,
                system_prompt=system_prompt,
                max_turns=max_turns,
                max_steps_per_turn=max_steps,
                attempt=attempt,
                seed=seed + n,
            )

        items.append(WorkItem(intent.intent_id, plan))
    return items


def _scenario_planner(
    scenario: Scenario,
    backend: str,
    template: str | None,
    max_turns: int,
    max_steps: int,
    system_prompt: str,
    seed: int,
) -> Any:
    def plan(attempt: int) -> SessionPlan:
        return SessionPlan(
            intent_id=scenario.id,
            intent=scenario.intent,
            agent=ScriptedAgentClient(scenario),
            user=ScriptedUserClient(scenario),
            template=template or scenario.template,
            backend=backend,
            persona=scenario.persona,
            intent_record={
                "id": scenario.id,
                "natural_language_intent": scenario.intent,
                "domains": scenario.domains,
                "tasks": scenario.tasks,
                "complexity": scenario.complexity,
            },
            scenario=scenario.name,
            system_prompt=system_prompt,
            max_turns=max_turns,
            max_steps_per_turn=max_steps,
            attempt=attempt,
            seed=seed,
        )

    return plan


def run_with_progress(
    store: SqlEventStore, items: list[WorkItem], *, workers: int, console: Console | None = None
) -> BatchReport:
    console = console or Console(stderr=True)
    lock = threading.Lock()
    running = failed = tool_calls = 0
    started = time.monotonic()
    progress = Progress(
        TextColumn("[bold]recording"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("record", total=len(items), detail="")

    def detail() -> str:
        rate = tool_calls / max(time.monotonic() - started, 1e-9)
        return f"running {running}  failed {failed}  tool calls {tool_calls} ({rate:.1f}/s)"

    def on_event(event: Event) -> None:
        nonlocal tool_calls
        if isinstance(event, ToolCallFinished):
            with lock:
                tool_calls += 1
            progress.update(task, detail=detail())

    def on_start(_: WorkItem) -> None:
        nonlocal running
        with lock:
            running += 1
        progress.update(task, detail=detail())

    def on_done(result: SessionResult) -> None:
        nonlocal running, failed
        with lock:
            running -= 1
            failed += result.status == "error"
        progress.update(task, advance=1, detail=detail())

    with progress:
        report = record_batch(
            store, items, workers=workers, on_event=on_event, on_start=on_start, on_done=on_done
        )
        progress.update(task, completed=len(items))
    print_summary(report, console)
    return report


def print_summary(report: BatchReport, console: Console) -> None:
    table = Table(title="recording summary", show_header=True)
    table.add_column("status")
    table.add_column("sessions", justify="right")
    for status, n in sorted(report.by_status().items()):
        table.add_row(status, str(n))
    if report.skipped:
        table.add_row("skipped (already recorded)", str(report.skipped))
    if report.closed_interrupted:
        table.add_row("closed as interrupted", str(report.closed_interrupted))
    console.print(table)
    latencies = sorted(x for r in report.results for x in r.append_latencies)
    calls = sum(r.tool_calls for r in report.results)
    line = (
        f"{len(report.results)} sessions, {calls} tool calls, {report.tokens} tokens, "
        f"{report.seconds:.1f} s wall"
    )
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        p50 = statistics.median(latencies)
        line += f"; event append p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
    console.print(line)
    for result in report.results:
        if result.status == "error":
            console.print(f"[red]error[/] session {result.session_id}: {result.reason}")
