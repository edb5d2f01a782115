"""`ise-es sessions list|show`: the log, readable in a terminal."""

from __future__ import annotations

import json
from collections.abc import Sequence

import msgspec
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ise_es.errors import InvalidInput
from ise_es.events import (
    AgentMessage,
    Event,
    FsDiff,
    OutputChunk,
    SessionEnded,
    SessionStarted,
    ToolCallFinished,
    ToolCallStarted,
    UserTurn,
)
from ise_es.store.sql import SqlEventStore

__all__ = ["SessionRow", "list_sessions", "print_session", "print_session_table", "session_events"]


class SessionRow(msgspec.Struct, frozen=True):
    session_id: str
    intent_id: str
    intent: str
    status: str
    """completed | turn_cap | stalled | error | interrupted | running"""
    user_turns: int
    tool_calls: int
    started: float
    duration_s: float | None


def list_sessions(store: SqlEventStore, *, status: str | None = None) -> list[SessionRow]:
    starts: dict[str, tuple[SessionStarted, float]] = {}
    ends: dict[str, tuple[SessionEnded, float]] = {}
    for event in store.iter_all(types=["session_started", "session_ended"], batch=5000):
        if isinstance(event.data, SessionStarted):
            starts[event.stream_id] = (event.data, event.recorded_at)
        elif isinstance(event.data, SessionEnded):
            ends[event.stream_id] = (event.data, event.recorded_at)
    rows = []
    for stream_id, (start, at) in sorted(starts.items(), key=lambda kv: (kv[1][1], kv[0])):
        end = ends.get(stream_id)
        row = SessionRow(
            session_id=start.session_id,
            intent_id=start.intent_id,
            intent=start.intent,
            status=end[0].status if end else "running",
            user_turns=end[0].user_turns if end else 0,
            tool_calls=end[0].tool_calls if end else 0,
            started=at,
            duration_s=round(end[1] - at, 3) if end else None,
        )
        if status is None or row.status == status:
            rows.append(row)
    return rows


def print_session_table(rows: Sequence[SessionRow], console: Console | None = None) -> None:
    import datetime as dt

    table = Table(show_header=True, header_style="bold")
    for column in ("session", "intent", "status", "turns", "tools", "started (UTC)", "duration"):
        table.add_column(column, overflow="fold")
    for r in rows:
        started = dt.datetime.fromtimestamp(r.started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            r.session_id,
            escape(r.intent_id),
            r.status,
            str(r.user_turns),
            str(r.tool_calls),
            started,
            f"{r.duration_s:.1f}s" if r.duration_s is not None else "-",
        )
    (console or Console()).print(table)


def session_events(store: SqlEventStore, session_id: str) -> list[Event]:
    """Raises InvalidInput when there is no such session."""
    stream = session_id if session_id.startswith("session-") else f"session-{session_id}"
    events = [e.data for e in store.read_stream(stream)]
    if not events:
        raise InvalidInput(f"no session {session_id!r}: `ise-es sessions list` shows the ids")
    return events


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more chars)"


def print_session(
    store: SqlEventStore, events: Sequence[Event], console: Console | None = None
) -> None:
    out = console or Console()
    names: dict[str, str] = {}
    for event in events:
        if isinstance(event, SessionStarted):
            out.rule(f"session {event.session_id}")
            out.print(f"[bold]intent[/] {escape(event.intent_id)}: {escape(event.intent)}")
            out.print(
                f"[dim]sandbox {event.sandbox_backend}, template {event.template} "
                f"({event.template_digest[:19]}), attempt {event.attempt}[/]"
            )
        elif isinstance(event, UserTurn):
            tag = " (closing)" if event.completed else ""
            out.print(f"\n[bold cyan]user[/] [dim]turn {event.turn}{tag}[/]\n{escape(event.text)}")
        elif isinstance(event, AgentMessage):
            if event.reasoning:
                out.print(f"[dim italic]thinking: {escape(_clip(event.reasoning, 400))}[/]")
            if event.text:
                out.print(f"[bold green]agent[/]\n{escape(event.text)}")
        elif isinstance(event, ToolCallStarted):
            names[event.call_id] = event.tool
            try:
                args = json.dumps(json.loads(event.arguments), ensure_ascii=False)
            except ValueError:
                args = event.arguments
            out.print(f"[bold magenta]> {event.tool}[/] {escape(_clip(args, 300))}")
        elif isinstance(event, ToolCallFinished):
            status = (
                "timed out"
                if event.timed_out
                else (
                    f"exit {event.exit_code}"
                    if event.exit_code is not None
                    else ("error" if event.is_error else "ok")
                )
            )
            colour = (
                "red"
                if event.is_error or event.timed_out or (event.exit_code or 0) != 0
                else "green"
            )
            out.print(f"  [{colour}]{status}[/] [dim]{event.duration_ms:.0f} ms[/]")
            if event.result_text:
                out.print(escape(_clip(event.result_text)), style="dim")
        elif isinstance(event, FsDiff):
            for change in event.changes:
                size = f" {change.size} B" if change.size is not None else ""
                out.print(f"  [yellow]{change.kind}[/] {escape(change.path)}{size}")
        elif isinstance(event, SessionEnded):
            out.rule(f"{event.status}: {event.reason}")
        elif isinstance(event, OutputChunk):
            continue
