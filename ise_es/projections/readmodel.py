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
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
import sqlalchemy as sa

from ise_es.projections.audit import Finding, SessionAudit, audit_session, load_lexicon
from ise_es.projections.onepass import (
    FLUSH_SESSIONS,
    CatchUpResult,
    OnePass,
    ReadModel,
    start_checkpoint,
    write_batch,
)
from ise_es.projections.session import CONVERSATION_TYPES, SessionView
from ise_es.projections.stats import ReplaySummary, SessionSummary, summarize_session
from ise_es.projections.tables import (
    audit_findings,
    audit_sessions,
    replay_summaries,
    session_summaries,
)
from ise_es.store.base import EventStore

__all__ = [
    "FLUSH_SESSIONS",
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

_summary_encoder = msgspec.msgpack.Encoder()
_summary_decoder = msgspec.msgpack.Decoder(SessionSummary)


def catch_up(
    store: EventStore,
    model: ReadModel,
    *,
    rebuild: bool = False,
    max_buffered: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> CatchUpResult:
    """Bring one read model up to date with the store: the one-pass read (onepass.py) with
    this model alone."""
    one = OnePass(store, [model], rebuild=rebuild, max_buffered=max_buffered, progress=progress)
    one.run()
    return one.results()[0]


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
    types: tuple[str, ...] = (*CONVERSATION_TYPES, "model_call", "replay_started", "replay_ended")

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


def load_summaries(store: EventStore) -> Iterable[SessionSummary]:
    """Every stored summary, in session-id order, decoded as it is read."""
    with store.read_projection() as conn:
        result = conn.execute(
            sa.select(session_summaries.c.summary).order_by(session_summaries.c.session_id)
        )
        for (blob,) in result:
            yield _summary_decoder.decode(blob)


def load_replays(store: EventStore) -> list[ReplaySummary]:
    with store.read_projection() as conn:
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
    types: tuple[str, ...] = CONVERSATION_TYPES

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


def load_audits(store: EventStore, *, status: str = "any") -> list[SessionAudit]:
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
    with store.read_projection() as conn:
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
