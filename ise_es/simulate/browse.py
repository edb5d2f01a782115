"""`ise-es sessions list|show`: the log, readable in a terminal.

Ids are what people copy out of these tables (into `sessions show`, `replay`), so a table never
breaks one across lines: the session id column keeps its full width at any terminal width, the
intent id is shortened with an ellipsis only in a terminal too narrow for it, and output that is
not a terminal (a pipe, a file) gets every row on one line, whole. A session that has started and
not ended is `running`, and its turn and tool-call counts are read live from its stream.

This module returns data (rows, the table's lines, a session's events); ise_es/commands/
sessions.py prints them.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence

import msgspec

from ise_es.events import Event, SessionEnded, SessionStarted, ToolCallStarted, UserTurn
from ise_es.store.base import EventStore
from ise_es.store.resolve import resolve_session_stream

__all__ = [
    "SessionRow",
    "format_session_table",
    "list_sessions",
    "live_counts",
    "session_events",
]

MIN_INTENT_WIDTH = 8
"""In a narrow terminal the intent id is shortened down to this many cells, no further."""


class SessionRow(msgspec.Struct, frozen=True):
    session_id: str
    intent_id: str
    intent: str
    status: str
    """completed | turn_cap | stalled | error | interrupted | running"""
    user_turns: int
    """Ended: as SessionEnded counts them; running: the user turns recorded so far."""
    tool_calls: int
    """Ended: as SessionEnded counts them; running: the tool calls started so far."""
    started: float
    duration_s: float | None


def live_counts(events: Iterable[Event]) -> tuple[int, int]:
    """(user turns, tool calls) of a session that has not ended, counted as the recorder will
    count them in SessionEnded: the closing user turn (completed) is not a turn of work, and a
    tool call counts from the moment it starts."""
    turns = calls = 0
    for event in events:
        if isinstance(event, UserTurn) and not event.completed:
            turns += 1
        elif isinstance(event, ToolCallStarted):
            calls += 1
    return turns, calls


def list_sessions(store: EventStore, *, status: str | None = None) -> list[SessionRow]:
    """Every session, oldest first. Reads only the start and end events of the store, plus the
    whole stream of each running session (few: the ones being recorded, or cut off by a kill)."""
    starts: dict[str, tuple[SessionStarted, float]] = {}
    ends: dict[str, tuple[SessionEnded, float]] = {}
    for event in store.iter_all(types=["session_started", "session_ended"], batch=5000):
        if isinstance(event.data, SessionStarted):
            # Imported sessions carry their real times; the envelope holds the import's.
            at = event.data.started_at
            starts[event.stream_id] = (event.data, event.recorded_at if at is None else at)
        elif isinstance(event.data, SessionEnded):
            end_at = event.data.ended_at
            ends[event.stream_id] = (event.data, event.recorded_at if end_at is None else end_at)
    rows = []
    for stream_id, (start, at) in sorted(starts.items(), key=lambda kv: (kv[1][1], kv[0])):
        end = ends.get(stream_id)
        row_status = end[0].status if end else "running"
        if status is not None and row_status != status:
            continue
        if end:
            turns, calls = end[0].user_turns, end[0].tool_calls
        else:
            turns, calls = live_counts(e.data for e in store.read_stream(stream_id))
        rows.append(
            SessionRow(
                session_id=start.session_id,
                intent_id=start.intent_id,
                intent=start.intent,
                status=row_status,
                user_turns=turns,
                tool_calls=calls,
                started=at,
                duration_s=round(end[1] - at, 3) if end else None,
            )
        )
    return rows


HEADER = ("session", "status", "turns", "tools", "started (UTC)", "duration", "intent")
GAP = "  "


def _cells(text: str) -> int:
    """Terminal cells `text` takes (wide East Asian characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _clip_cells(text: str, cells: int) -> str:
    """`text` in at most `cells` cells, ending in an ellipsis when it was cut."""
    if _cells(text) <= cells:
        return text
    out, used = [], 1
    for ch in text:
        used += _cells(ch)
        if used > cells:
            break
        out.append(ch)
    return "".join(out) + "…"


def _printable(text: str) -> str:
    # One row per line, whatever an imported id holds.
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def format_session_table(rows: Sequence[SessionRow], *, width: int | None = None) -> list[str]:
    """The `sessions list` table as lines: a header, then one line per session, columns two
    spaces apart, the intent id last.

    width: the terminal's width, or None when the output is not a terminal (every cell whole,
    lines as long as they need). In a terminal only the intent id is shortened, with an
    ellipsis and to no fewer than MIN_INTENT_WIDTH cells; below that the lines are longer than
    the terminal (it soft-wraps them) rather than a session id being cut.
    """
    import datetime as dt

    table = [HEADER] + [
        (
            r.session_id,
            r.status,
            str(r.user_turns),
            str(r.tool_calls),
            dt.datetime.fromtimestamp(r.started, dt.UTC).strftime("%Y-%m-%d %H:%M"),
            f"{r.duration_s:.1f}s" if r.duration_s is not None else "-",
            _printable(r.intent_id),
        )
        for r in rows
    ]
    widths = [max(_cells(row[i]) for row in table) for i in range(len(HEADER))]
    if width is not None:
        fixed = sum(widths[:-1]) + len(GAP) * (len(widths) - 1)
        widths[-1] = min(widths[-1], max(MIN_INTENT_WIDTH, width - fixed))
    lines = []
    for row in table:
        cells = [cell + " " * (w - _cells(cell)) for cell, w in zip(row[:-1], widths, strict=False)]
        lines.append(GAP.join([*cells, _clip_cells(row[-1], widths[-1])]))
    return lines


def session_events(store: EventStore, session_id: str) -> list[Event]:
    """The events of the session a full id, `session-<id>` or a unique prefix names.

    Raises:
        InvalidInput: no such session, or the prefix is ambiguous.
    """
    return [e.data for e in store.read_stream(resolve_session_stream(store, session_id))]
