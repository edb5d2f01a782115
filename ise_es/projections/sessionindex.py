"""The session index: what a list of 25k sessions needs, one narrow row per session.

`sessions list` folds SessionStarted/SessionEnded of the whole log on every call; the viewer's
session list pages, sorts, filters and searches, and must answer a first page in milliseconds
whatever the corpus size. So it reads a read model instead: `SessionIndexModel` keeps one row
per session (status, turns, tool calls, start, duration, tokens, audit flags, the tools used,
the latest replay verdict) and the session's searchable text in a second table, both committed
with the model's checkpoint like the other read models (`catch_up` in readmodel.py).

Running sessions are indexed too (status "running"): `catch_up` refolds every session it read
events of, so a live session's row follows it. The search text is the lower-cased user turns,
agent text and tool results as the agent saw them, capped at `TEXT_CAP` characters per session
(a search does not look further into a very long session).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa

from ise_es.events import ToolCallFinished
from ise_es.projections.audit import audit_session, load_lexicon
from ise_es.projections.session import SESSION_EVENT_TYPES, AgentStep, SessionView
from ise_es.projections.stats import ReplaySummary, SessionSummary, summarize_session
from ise_es.projections.tables import session_index, session_text
from ise_es.store.base import EventStore, StreamInfo
from ise_es.store.engine import Engines

__all__ = [
    "SORTS",
    "SessionFilter",
    "SessionIndexModel",
    "SessionPage",
    "SessionRow",
    "index_row",
    "index_summaries",
    "query_sessions",
]

INDEX_VERSION = 1
TEXT_CAP = 65_536
SORTS = (
    "started_at",
    "duration",
    "user_turns",
    "tool_calls",
    "tokens",
    "audit_flags",
    "session_id",
)
_SORT_COLUMNS = {
    "started_at": session_index.c.started_at,
    "duration": session_index.c.duration_s,
    "user_turns": session_index.c.user_turns,
    "tool_calls": session_index.c.tool_calls,
    "tokens": session_index.c.tokens,
    "audit_flags": session_index.c.audit_flags,
    "session_id": session_index.c.session_id,
}
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(SessionSummary)


def _tokens(view: SessionView) -> int:
    total = 0
    for call in view.model_calls:
        usage = call.usage
        total += usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    return total


def _search_text(view: SessionView) -> str:
    parts: list[str] = [view.session_id, view.intent_id]
    if view.started is not None:
        parts.append(view.started.intent)
    size = sum(len(p) for p in parts)
    for entry in view.entries:
        if size >= TEXT_CAP:
            break
        if isinstance(entry, AgentStep):
            text = entry.message.text
        elif isinstance(entry, ToolCallFinished):
            text = entry.result_text
        else:
            text = entry.text
        if text:
            parts.append(text)
            size += len(text) + 1
    return "\n".join(parts)[:TEXT_CAP].lower()


def _pack(names: Sequence[str]) -> str:
    return "," + ",".join(sorted(set(names))) + "," if names else ""


class SessionIndexModel:
    """One index row and one search-text row per session, plus the latest replay verdict."""

    checkpoint_prefix = "session-index@"
    types: tuple[str, ...] = (*SESSION_EVENT_TYPES, "replay_started", "replay_ended")

    def __init__(self, store: EventStore, lexicon: list[str] | None = None) -> None:
        self.store = store
        self.lexicon = lexicon if lexicon is not None else load_lexicon()
        digest = hashlib.sha256("\n".join(self.lexicon).encode()).hexdigest()[:12]
        self.name = f"session-index@v{INDEX_VERSION}-{digest}"
        self._listing: dict[str, StreamInfo] = {}

    def reset(self, conn: sa.Connection) -> None:
        conn.execute(sa.delete(session_text))
        conn.execute(sa.delete(session_index))

    def _stream_infos(self, views: list[SessionView]) -> dict[str, StreamInfo]:
        """Start and last-append times of these sessions' streams.

        A big batch (a rebuild) reads the whole listing once and reuses it while it covers the
        batch; a stream the listing saw at an older version than the fold (it grew since) and
        the few sessions of a live refresh are asked for one by one.
        """
        if len(views) > 20 and any(v.stream_id not in self._listing for v in views):
            self._listing = {s.stream_id: s for s in self.store.streams(stream_type="session")}
        infos: dict[str, StreamInfo] = {}
        for view in views:
            info = self._listing.get(view.stream_id) if len(views) > 20 else None
            if info is None or info.version < view.last_version:
                info = next(
                    (
                        s
                        for s in self.store.streams(view.stream_id)
                        if s.stream_id == view.stream_id
                    ),
                    None,
                )
            if info is not None:
                infos[view.stream_id] = info
        return infos

    def _row(self, view: SessionView, info: StreamInfo | None) -> dict[str, Any]:
        summary = summarize_session(view)
        audit = audit_session(view, self.lexicon)
        started_at = getattr(view.started, "started_at", None) or (info.created_at if info else 0.0)
        duration = None
        if view.ended is not None:
            ended_at = getattr(view.ended, "ended_at", None) or (
                info.updated_at if info else started_at
            )
            duration = round(max(0.0, ended_at - started_at), 3)
        return {
            "session_id": view.session_id,
            "stream_id": view.stream_id,
            "intent_id": view.intent_id,
            "status": view.status or "running",
            # the recorder's own counts once it ended (what `sessions list` shows: a turn cap
            # can leave one more user turn in the log than it counts), the fold's before
            "user_turns": view.ended.user_turns if view.ended else summary.user_turns,
            "tool_calls": view.ended.tool_calls if view.ended else summary.tool_calls,
            "started_at": started_at,
            "duration_s": duration,
            "tokens": _tokens(view),
            "audit_flags": len(audit.findings),
            "audit_rules": _pack([f.rule for f in audit.findings])[:1000],
            "tools": _pack(summary.tool_sequence)[:2000],
            "replay_id": None,
            "replay_verdict": None,
            "replay_determinism": None,
            "last_position": view.last_position,
            "summary": _encoder.encode(summary),
        }

    def write_sessions(self, conn: sa.Connection, views: list[SessionView]) -> None:
        latest = {v.session_id: v for v in views}
        infos = self._stream_infos(list(latest.values()))
        rows = [self._row(v, infos.get(v.stream_id)) for v in latest.values()]
        ids = list(latest)
        kept: dict[str, Any] = {}
        for i in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
            chunk = ids[i : i + 500]
            for r in conn.execute(
                sa.select(
                    session_index.c.session_id,
                    session_index.c.replay_id,
                    session_index.c.replay_verdict,
                    session_index.c.replay_determinism,
                ).where(session_index.c.session_id.in_(chunk))
            ):
                kept[r.session_id] = r
            conn.execute(sa.delete(session_index).where(session_index.c.session_id.in_(chunk)))
            conn.execute(sa.delete(session_text).where(session_text.c.session_id.in_(chunk)))
        for row in rows:
            old = kept.get(row["session_id"])
            if old is not None:  # a refold keeps the verdict of a replay indexed earlier
                row["replay_id"] = old.replay_id
                row["replay_verdict"] = old.replay_verdict
                row["replay_determinism"] = old.replay_determinism
        conn.execute(sa.insert(session_index), rows)
        conn.execute(
            sa.insert(session_text),
            [{"session_id": v.session_id, "text": _search_text(v)} for v in latest.values()],
        )

    def write_replays(self, conn: sa.Connection, replays: list[ReplaySummary]) -> None:
        """The latest replay of a session (replay ids ascend with time) sets its verdict."""
        for replay in replays:
            conn.execute(
                sa.update(session_index)
                .where(session_index.c.stream_id == replay.source_stream)
                .where(
                    sa.or_(
                        session_index.c.replay_id.is_(None),
                        session_index.c.replay_id <= replay.replay_id,
                    )
                )
                .values(
                    replay_id=replay.replay_id,
                    replay_verdict=replay.status,
                    replay_determinism=replay.determinism,
                )
            )


class SessionFilter(msgspec.Struct, frozen=True, kw_only=True):
    """The session list's query: every field optional; see `query_sessions`."""

    status: str | None = None
    q: str | None = None
    tool: str | None = None
    audit: str | None = None
    """flagged | clean | a rule name (role_drift, stagnation, ...)."""
    replay: str | None = None
    """any | none | a verdict (reproduced, equivalent, diverged, failed)."""
    min_turns: int | None = None
    intent: str | None = None
    """Only the sessions of this intent id (its attempts)."""
    sort: str = "-started_at"
    """A name of SORTS, '-' first for descending."""
    limit: int = 50
    offset: int = 0


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    intent_id: str
    status: str
    user_turns: int
    tool_calls: int
    started_at: float
    duration_s: float | None
    tokens: int
    audit_flags: int
    replay_verdict: str | None
    replay_id: str | None = None


class SessionPage(msgspec.Struct, kw_only=True):
    total: int
    sessions: list[SessionRow]
    counts: dict[str, int]
    """Sessions per status under every filter but `status`."""


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(dialect: str, needle: str) -> sa.ColumnElement[bool]:
    """The search text holds `needle` (both lower-cased): SQLite's instr() scans several
    times faster than LIKE '%...%', which matches a pattern; PostgreSQL's strpos likewise."""
    text = session_text.c.text
    if dialect == "sqlite":
        return sa.func.instr(text, needle) > 0
    if dialect == "postgresql":
        return sa.func.strpos(text, needle) > 0
    return text.like(_like(needle), escape="\\")


MATCH_LIST_MAX = 20_000
"""Search matches passed on as a list of ids (one text scan per query); more than this, and
the page and the counts each scan the text (SQLite binds at most 32,766 values)."""


def _search(conn: sa.Connection, q: str) -> sa.ColumnElement[bool]:
    """The search condition, with the text scanned once: the page and the per-status counts
    both need it, and the scan is the whole cost of a search."""
    matching = sa.select(session_text.c.session_id).where(_contains(conn.dialect.name, q.lower()))
    ids = conn.execute(matching.limit(MATCH_LIST_MAX + 1)).scalars().all()
    if len(ids) <= MATCH_LIST_MAX:
        return session_index.c.session_id.in_(ids)
    return session_index.c.session_id.in_(matching)


def _conditions(f: SessionFilter, conn: sa.Connection) -> list[sa.ColumnElement[bool]]:
    t = session_index.c
    where: list[sa.ColumnElement[bool]] = []
    if f.q:
        where.append(_search(conn, f.q))
    if f.tool:
        where.append(t.tools.like(_like(f",{f.tool},"), escape="\\"))
    if f.audit == "flagged":
        where.append(t.audit_flags > 0)
    elif f.audit == "clean":
        where.append(t.audit_flags == 0)
    elif f.audit:
        where.append(t.audit_rules.like(_like(f",{f.audit},"), escape="\\"))
    if f.replay == "any":
        where.append(t.replay_verdict.is_not(None))
    elif f.replay == "none":
        where.append(t.replay_verdict.is_(None))
    elif f.replay:
        where.append(t.replay_verdict == f.replay)
    if f.intent:
        where.append(t.intent_id == f.intent)
    if f.min_turns is not None:
        where.append(t.user_turns >= f.min_turns)
    return where


def query_sessions(engines: Engines, f: SessionFilter) -> SessionPage:
    """One page of the session index, its total and the per-status counts.

    Raises:
        ValueError: an unknown sort key (the caller turns it into a 400).
    """
    key = f.sort.removeprefix("-")
    if key not in _SORT_COLUMNS:
        raise ValueError(
            f"unknown sort {f.sort!r}: use one of {', '.join(SORTS)} ('-' first: desc)"
        )
    column = _SORT_COLUMNS[key]
    order = [column.desc(), session_index.c.session_id.desc()]
    if not f.sort.startswith("-"):
        order = [column.asc(), session_index.c.session_id.asc()]
    t = session_index.c
    with engines.read.connect() as conn:
        where = _conditions(f, conn)
        listed = [*where, t.status == f.status] if f.status else where
        counts = {
            r.status: r.n
            for r in conn.execute(
                sa.select(t.status, sa.func.count().label("n")).where(*where).group_by(t.status)
            )
        }
        total = counts.get(f.status, 0) if f.status else sum(counts.values())
        rows = conn.execute(
            sa.select(
                t.session_id,
                t.intent_id,
                t.status,
                t.user_turns,
                t.tool_calls,
                t.started_at,
                t.duration_s,
                t.tokens,
                t.audit_flags,
                t.replay_verdict,
                t.replay_id,
            )
            .where(*listed)
            .order_by(*order)
            .limit(max(1, min(f.limit, 500)))
            .offset(max(0, f.offset))
        ).all()
    return SessionPage(
        total=total,
        sessions=[SessionRow(**r._asdict()) for r in rows],
        counts=counts,
    )


def index_row(engines: Engines, session_id: str) -> SessionRow | None:
    """One session's index row (None: not indexed yet)."""
    t = session_index.c
    with engines.read.connect() as conn:
        r = conn.execute(
            sa.select(
                t.session_id,
                t.intent_id,
                t.status,
                t.user_turns,
                t.tool_calls,
                t.started_at,
                t.duration_s,
                t.tokens,
                t.audit_flags,
                t.replay_verdict,
                t.replay_id,
            ).where(t.session_id == session_id)
        ).first()
    return SessionRow(**r._asdict()) if r is not None else None


def index_summaries(engines: Engines) -> tuple[list[SessionSummary], list[ReplaySummary]]:
    """Every indexed session's summary and its latest replay (for the corpus figures)."""
    t = session_index.c
    summaries: list[SessionSummary] = []
    replays: list[ReplaySummary] = []
    with engines.read.connect() as conn:
        for r in conn.execute(
            sa.select(t.summary, t.stream_id, t.replay_id, t.replay_verdict, t.replay_determinism)
        ):
            summaries.append(_decoder.decode(r.summary))
            if r.replay_id is not None:
                replays.append(
                    ReplaySummary(
                        replay_id=r.replay_id,
                        source_stream=r.stream_id,
                        status=r.replay_verdict or "",
                        determinism=r.replay_determinism or 0.0,
                    )
                )
    return summaries, replays
