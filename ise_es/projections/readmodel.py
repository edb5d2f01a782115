"""Incremental read models: session summaries (for stats) and audit findings.

A read model remembers the global position it has processed (`projection_checkpoints`). A
rerun reads only events after it, refolds each session those events touched (the whole
stream, so every rule sees the whole session), and commits the new rows together with the new
checkpoint in one transaction (the store's read-model verb `write_projection` owns the
transaction and the checkpoint row; handlers write their own tables inside it).
`rebuild=True` deletes the rows and starts from position 0; the rows it produces are
identical to an incremental run's, which the tests check.

Memory stays bounded whatever the corpus size: events are buffered per stream only until the
stream's SessionEnded arrives; past `max_buffered` events every buffered stream is refolded
from the store and dropped from memory.

A checkpoint's name carries a version (and, for audits, the lexicon's digest): when the code
or the lexicon changes, the name changes, no checkpoint is found, and the model rebuilds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
import sqlalchemy as sa

from ise_es.events import ReplayEnded, ReplayStarted, SessionEnded
from ise_es.projections.audit import Finding, SessionAudit, audit_session, load_lexicon
from ise_es.projections.session import SESSION_EVENT_TYPES, SessionView, fold_session
from ise_es.projections.stats import ReplaySummary, SessionSummary, summarize_session
from ise_es.projections.tables import (
    audit_findings,
    audit_sessions,
    replay_summaries,
    session_summaries,
)
from ise_es.store.base import EventStore, StoredEvent
from ise_es.store.engine import Engines

__all__ = [
    "AuditModel",
    "CatchUpResult",
    "ReadModel",
    "StatsModel",
    "catch_up",
    "load_audits",
    "load_replays",
    "load_summaries",
    "start_checkpoint",
    "write_batch",
]

STATS_VERSION = 2
"""2: failure -> recovery by step across turns, the tools factor's fallback, the failure rule's
`details.error` and `{"error": ...}` results (stats.py, session.FAILURE_RULE)."""
AUDIT_VERSION = 1
FLUSH_SESSIONS = 500
"""Sessions per transaction: bounds both memory and the work lost to a crash."""

_summary_encoder = msgspec.msgpack.Encoder()
_summary_decoder = msgspec.msgpack.Decoder(SessionSummary)


class ReadModel(Protocol):
    name: str
    """Checkpoint name (includes the model's version)."""
    checkpoint_prefix: str
    """Checkpoints of older versions start with this and are removed on rebuild."""
    types: tuple[str, ...]

    def reset(self, conn: sa.Connection) -> None: ...

    def write_sessions(self, conn: sa.Connection, views: list[SessionView]) -> None: ...

    def write_replays(self, conn: sa.Connection, replays: list[ReplaySummary]) -> None: ...


@dataclass(slots=True)
class CatchUpResult:
    name: str
    rebuilt: bool
    events: int
    """Events read after the checkpoint."""
    sessions: int
    """Sessions (re)folded."""
    replays: int
    position: int
    seconds: float


def start_checkpoint(store: EventStore, model: ReadModel, *, rebuild: bool) -> tuple[int, bool]:
    """The position `model` resumes after, and whether it starts over (asked to, or no
    checkpoint of this version: its rows are deleted and its checkpoint set to 0, and the
    checkpoints of its older versions are forgotten)."""
    position = store.projection_checkpoint(model.name)
    if not rebuild and position is not None:
        return position, False
    store.write_projection(model.name, 0, model.reset, replace_prefix=model.checkpoint_prefix)
    return 0, True


def write_batch(
    store: EventStore,
    model: ReadModel,
    views: list[SessionView],
    replays: list[ReplaySummary],
    position: int,
) -> None:
    """`model`'s rows for a batch and its checkpoint `position`, in one transaction (the
    store's read-model verb owns it; the model only writes its own tables)."""

    def rows(conn: sa.Connection) -> None:
        if views:
            model.write_sessions(conn, views)
        if replays:
            model.write_replays(conn, replays)

    store.write_projection(model.name, position, rows)


def catch_up(
    store: EventStore,
    engines: Engines,
    model: ReadModel,
    *,
    rebuild: bool = False,
    max_buffered: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> CatchUpResult:
    """Bring one read model up to date with the store.

    `engines` is no longer used (rows and checkpoints go through the store's read-model verbs);
    it stays until its callers are changed with the rest of issue 16's presentation move.
    """
    started = time.perf_counter()
    position, rebuilt = start_checkpoint(store, model, rebuild=rebuild)
    buffers: dict[str, list[StoredEvent]] = {}
    buffered = 0
    ready: list[SessionView] = []
    replays: list[ReplaySummary] = []
    replay_sources: dict[str, str] = {}
    n_events = n_sessions = n_replays = 0
    last = position

    def flush(refold_open: bool) -> None:
        nonlocal buffered, n_sessions, n_replays, position
        if refold_open:
            for stream_id in list(buffers):
                ready.append(fold_session(store.read_stream(stream_id), stream_id))
            buffers.clear()
            buffered = 0
        write_batch(store, model, ready, replays, last)
        n_sessions += len(ready)
        n_replays += len(replays)
        ready.clear()
        replays.clear()
        position = last
        if progress is not None:
            progress(n_events)

    for stored in store.iter_all(position, batch=5000, types=model.types):
        n_events += 1
        last = stored.position
        data = stored.data
        if isinstance(data, ReplayStarted):
            replay_sources[stored.stream_id] = data.source_stream
            continue
        if isinstance(data, ReplayEnded):
            replays.append(
                ReplaySummary(
                    replay_id=stored.stream_id,
                    source_stream=replay_sources.get(stored.stream_id)
                    or _replay_source(store, stored.stream_id),
                    status=data.status,
                    determinism=data.determinism,
                )
            )
            continue
        if not stored.stream_id.startswith("session-"):
            continue
        events = buffers.setdefault(stored.stream_id, [])
        events.append(stored)
        buffered += 1
        if isinstance(data, SessionEnded) and events[0].version == 1:
            ready.append(fold_session(buffers.pop(stored.stream_id), stored.stream_id))
            buffered -= len(events)
        if len(ready) >= FLUSH_SESSIONS or buffered > max_buffered:
            flush(refold_open=True)
    if ready or replays or buffers or last != position:
        flush(refold_open=True)
    return CatchUpResult(
        name=model.name,
        rebuilt=rebuilt,
        events=n_events,
        sessions=n_sessions,
        replays=n_replays,
        position=last,
        seconds=time.perf_counter() - started,
    )


def _replay_source(store: EventStore, replay_stream: str) -> str:
    head = store.read_stream(replay_stream, 1, to_version=1)
    if head and isinstance(head[0].data, ReplayStarted):
        return head[0].data.source_stream
    return ""


def _delete_sessions(conn: sa.Connection, table: sa.Table, ids: list[str]) -> None:
    for i in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
        conn.execute(sa.delete(table).where(table.c.session_id.in_(ids[i : i + 500])))


def _latest(views: list[SessionView]) -> list[SessionView]:
    """One view per session (a session refolded twice in one batch: the later fold wins)."""
    by_id: dict[str, SessionView] = {}
    for view in views:
        by_id[view.session_id] = view
    return list(by_id.values())


# -------------------------------------------------------------------------------- stats


class StatsModel:
    """Per-session `SessionSummary` rows and per-replay verdicts."""

    checkpoint_prefix = "stats@"
    name = f"stats@v{STATS_VERSION}"
    types: tuple[str, ...] = (*SESSION_EVENT_TYPES, "replay_started", "replay_ended")

    def reset(self, conn: sa.Connection) -> None:
        conn.execute(sa.delete(session_summaries))
        conn.execute(sa.delete(replay_summaries))

    def write_sessions(self, conn: sa.Connection, views: list[SessionView]) -> None:
        rows: list[dict[str, Any]] = []
        for view in _latest(views):
            summary = summarize_session(view)
            rows.append(
                {
                    "session_id": summary.session_id,
                    "stream_id": summary.stream_id,
                    "status": summary.status,
                    "intent_id": summary.intent_id,
                    "user_turns": summary.user_turns,
                    "tool_calls": summary.tool_calls,
                    "last_position": view.last_position,
                    "summary": _summary_encoder.encode(summary),
                }
            )
        _delete_sessions(conn, session_summaries, [r["session_id"] for r in rows])
        conn.execute(sa.insert(session_summaries), rows)

    def write_replays(self, conn: sa.Connection, replays: list[ReplaySummary]) -> None:
        latest = {r.replay_id: r for r in replays}
        ids = list(latest)
        for i in range(0, len(ids), 500):
            conn.execute(
                sa.delete(replay_summaries).where(
                    replay_summaries.c.replay_id.in_(ids[i : i + 500])
                )
            )
        conn.execute(sa.insert(replay_summaries), [msgspec.to_builtins(r) for r in latest.values()])


def load_summaries(engines: Engines) -> Iterable[SessionSummary]:
    """Every stored summary, in session-id order, decoded as it is read."""
    with engines.read.connect() as conn:
        result = conn.execute(
            sa.select(session_summaries.c.summary).order_by(session_summaries.c.session_id)
        )
        for (blob,) in result:
            yield _summary_decoder.decode(blob)


def load_replays(engines: Engines) -> list[ReplaySummary]:
    with engines.read.connect() as conn:
        return [
            ReplaySummary(
                replay_id=r.replay_id,
                source_stream=r.source_stream,
                status=r.status,
                determinism=r.determinism,
            )
            for r in conn.execute(
                sa.select(replay_summaries).order_by(replay_summaries.c.replay_id)
            )
        ]


# -------------------------------------------------------------------------------- audit


class AuditModel:
    """Per-session audit counters and one row per finding."""

    checkpoint_prefix = "audit@"
    types: tuple[str, ...] = SESSION_EVENT_TYPES

    def __init__(self, lexicon: list[str] | None = None) -> None:
        self.lexicon = lexicon if lexicon is not None else load_lexicon()
        digest = hashlib.sha256("\n".join(self.lexicon).encode()).hexdigest()[:12]
        self.name = f"audit@v{AUDIT_VERSION}-{digest}"

    def reset(self, conn: sa.Connection) -> None:
        conn.execute(sa.delete(audit_findings))
        conn.execute(sa.delete(audit_sessions))

    def write_sessions(self, conn: sa.Connection, views: list[SessionView]) -> None:
        sessions: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        for view in _latest(views):
            audit = audit_session(view, self.lexicon)
            sessions.append(
                {
                    "session_id": audit.session_id,
                    "stream_id": audit.stream_id,
                    "status": audit.status,
                    "user_turns": audit.user_turns,
                    "tool_calls": audit.tool_calls,
                    "well_formed_calls": audit.well_formed_calls,
                    "findings": len(audit.findings),
                    "last_position": view.last_position,
                }
            )
            findings.extend(
                {
                    "session_id": audit.session_id,
                    "seq": seq,
                    "rule": f.rule,
                    "turn": f.turn,
                    "call_id": f.call_id,
                    "detail": f.detail,
                }
                for seq, f in enumerate(audit.findings)
            )
        ids = [s["session_id"] for s in sessions]
        _delete_sessions(conn, audit_findings, ids)
        _delete_sessions(conn, audit_sessions, ids)
        conn.execute(sa.insert(audit_sessions), sessions)
        if findings:
            conn.execute(sa.insert(audit_findings), findings)

    def write_replays(self, conn: sa.Connection, replays: list[ReplaySummary]) -> None:
        """Audits do not read replays."""


def load_audits(engines: Engines, *, status: str = "any") -> list[SessionAudit]:
    """Stored audits (findings attached) in session-id order, filtered by session status.

    Sorted in Python: the databases' collations may order strings differently.
    """
    session_query = sa.select(audit_sessions)
    finding_query = sa.select(audit_findings)
    if status != "any":
        session_query = session_query.where(audit_sessions.c.status == status)
        finding_query = finding_query.join(
            audit_sessions, audit_sessions.c.session_id == audit_findings.c.session_id
        ).where(audit_sessions.c.status == status)
    found: dict[str, list[tuple[int, Finding]]] = {}
    with engines.read.connect() as conn:
        for f in conn.execute(finding_query):
            found.setdefault(f.session_id, []).append(
                (f.seq, Finding(rule=f.rule, turn=f.turn, call_id=f.call_id, detail=f.detail))
            )
        audits = [
            SessionAudit(
                session_id=s.session_id,
                stream_id=s.stream_id,
                status=s.status,
                user_turns=s.user_turns,
                tool_calls=s.tool_calls,
                well_formed_calls=s.well_formed_calls,
                findings=[f for _, f in sorted(found.get(s.session_id, []), key=lambda p: p[0])],
            )
            for s in conn.execute(session_query)
        ]
    audits.sort(key=lambda a: a.session_id)
    return audits
