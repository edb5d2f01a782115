"""`ise-es sessions list|show`: the log, readable in a terminal.

The rows and events come from `ise_es.simulate.browse` (plain data); this module prints them:
the list as plain text (no rich, so `sessions list` starts without loading it, and the ids are
never broken across lines: see `format_session_table`), one session with rich.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import SESSION_STATUSES

if TYPE_CHECKING:
    from rich.console import Console

    from ise_es.events import (
        AgentMessage,
        Event,
        FsDiff,
        SessionEnded,
        SessionStarted,
        ToolCallFinished,
        ToolCallStarted,
        UserTurn,
    )
    from ise_es.simulate.browse import SessionRow

__all__ = ["print_session", "print_session_table", "sessions_group", "terminal_width"]


@click.group("sessions")
def sessions_group() -> None:
    """Browse recorded sessions.

    \b
    Example:
        ise-es sessions list --status completed
        ise-es sessions show 3f2a9c1e0b7d4e21
    """


@sessions_group.command("list")
@db_option
@click.option(
    "--status",
    type=click.Choice([*SESSION_STATUSES, "running"]),
    default=None,
    help="Only sessions that ended with this status (running: not ended).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@reports_errors
def sessions_list(db_url: str, status: str | None, as_json: bool) -> None:
    """List sessions: id, status, user turns, tool calls, started, duration, intent.

    One line per session with the session id whole, in a terminal of any width and in a pipe;
    a running session (started, not ended) shows its turns and tool calls so far.

    \b
    Example:
        ise-es sessions list --status completed --json
    """
    from ise_es.simulate.browse import list_sessions

    with opened_store(db_url) as store:
        rows = list_sessions(store, status=status)
    if as_json:
        import msgspec

        for row in rows:
            click.echo(msgspec.json.encode(row).decode())
    else:
        width = terminal_width(sys.stdout, os.environ)
        bold = width is not None and "NO_COLOR" not in os.environ
        print_session_table(rows, width=width, bold_header=bold)


@sessions_group.command("show")
@db_option
@click.argument("session_id")
@click.option("--json", "as_json", is_flag=True, help="The session's events as JSON lines.")
@reports_errors
def sessions_show(db_url: str, session_id: str, as_json: bool) -> None:
    """Show one session: the conversation, tool calls, outputs, exit codes and file changes.

    SESSION_ID is the full id or a unique prefix of at least 4 characters (as for `replay`).
    A session still being recorded ends with its live turn and tool-call counts.

    \b
    Example:
        ise-es sessions show 3f2a9c1e0b7d4e21
        ise-es sessions show 3f2a --json
    """
    from ise_es.simulate.browse import session_events

    with opened_store(db_url) as store:
        events = session_events(store, session_id)
    if as_json:
        import msgspec

        for event in events:
            click.echo(msgspec.json.encode(event).decode())
    else:
        print_session(events)


def print_session_table(
    rows: Sequence[SessionRow], *, width: int | None = None, bold_header: bool = False
) -> None:
    """Print `format_session_table(rows, width=width)` on stdout (plain text: no rich, so
    `sessions list` starts without loading it)."""
    from ise_es.simulate.browse import format_session_table

    lines = format_session_table(rows, width=width)
    if bold_header:
        lines[0] = f"\x1b[1m{lines[0]}\x1b[0m"
    sys.stdout.write("\n".join(lines) + "\n")


def terminal_width(stream: TextIO, environ: Mapping[str, str]) -> int | None:
    """The width to fit a table to: the terminal's, or None when `stream` is not a terminal.

    TTY_COMPATIBLE=1/0 says whether it is one, as it does for rich (which prints `sessions
    show`), so both commands agree; COLUMNS overrides the width, as everywhere.
    """
    forced = environ.get("TTY_COMPATIBLE", "")
    if forced == "0" or (forced != "1" and not stream.isatty()):
        return None
    columns = environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else shutil.get_terminal_size().columns


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n... ({len(text) - limit} more chars)"


def print_session(events: Sequence[Event], console: Console | None = None) -> None:
    """The conversation, tool calls, outputs, exit codes and file changes, in order; a session
    that has not ended closes with its live counts."""
    from rich.console import Console

    from ise_es.events import SessionEnded
    from ise_es.simulate.browse import live_counts

    out = console or Console()
    printers = _printers()
    for event in events:
        printer = printers.get(type(event))
        if printer is not None:
            printer(out, event)
    if not any(isinstance(event, SessionEnded) for event in events):
        turns, calls = live_counts(events)
        out.rule(f"running: {turns} user turns, {calls} tool calls so far")


def _printers() -> Mapping[type, Callable[[Console, Any], None]]:
    """How each event type is shown; output chunks are not (the finished call carries the
    result)."""
    from ise_es import events as ev

    return {
        ev.SessionStarted: _show_started,
        ev.UserTurn: _show_user,
        ev.AgentMessage: _show_agent,
        ev.ToolCallStarted: _show_call,
        ev.ToolCallFinished: _show_result,
        ev.FsDiff: _show_diff,
        ev.SessionEnded: _show_ended,
    }


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _show_started(out: Console, event: SessionStarted) -> None:
    out.rule(f"session {event.session_id}")
    out.print(f"[bold]intent[/] {_escape(event.intent_id)}: {_escape(event.intent)}")
    out.print(
        f"[dim]sandbox {event.sandbox_backend}, template {event.template} "
        f"({event.template_digest[:19]}), attempt {event.attempt}[/]"
    )


def _show_user(out: Console, event: UserTurn) -> None:
    tag = " (closing)" if event.completed else ""
    out.print(f"\n[bold cyan]user[/] [dim]turn {event.turn}{tag}[/]\n{_escape(event.text)}")


def _show_agent(out: Console, event: AgentMessage) -> None:
    if event.reasoning:
        out.print(f"[dim italic]thinking: {_escape(_clip(event.reasoning, 400))}[/]")
    if event.text:
        out.print(f"[bold green]agent[/]\n{_escape(event.text)}")


def _show_call(out: Console, event: ToolCallStarted) -> None:
    try:
        args = json.dumps(json.loads(event.arguments), ensure_ascii=False)
    except ValueError:
        args = event.arguments
    out.print(f"[bold magenta]> {event.tool}[/] {_escape(_clip(args, 300))}")


def _show_result(out: Console, event: ToolCallFinished) -> None:
    if event.timed_out:
        status = "timed out"
    elif event.exit_code is not None:
        status = f"exit {event.exit_code}"
    else:
        status = "error" if event.is_error else "ok"
    failed = event.is_error or event.timed_out or (event.exit_code or 0) != 0
    colour = "red" if failed else "green"
    out.print(f"  [{colour}]{status}[/] [dim]{event.duration_ms:.0f} ms[/]")
    if event.result_text:
        out.print(_escape(_clip(event.result_text)), style="dim")


def _show_diff(out: Console, event: FsDiff) -> None:
    for change in event.changes:
        size = f" {change.size} B" if change.size is not None else ""
        out.print(f"  [yellow]{change.kind}[/] {_escape(change.path)}{size}")


def _show_ended(out: Console, event: SessionEnded) -> None:
    out.rule(f"{event.status}: {_escape(event.reason)}")
