"""The read models' tables, on the store's own metadata (migration 0002 creates them).

Each read model commits its rows and its checkpoint (`projection_checkpoints`) in one
transaction, so a crash never leaves rows ahead of, or behind, the checkpoint.
"""

from __future__ import annotations

import sqlalchemy as sa

from ise_es.store.schema import metadata

__all__ = [
    "audit_findings",
    "audit_sessions",
    "export_manifests",
    "replay_summaries",
    "session_index",
    "session_summaries",
    "session_text",
]

_Id = sa.String(200)
_Blob = sa.LargeBinary()

session_summaries = sa.Table(
    "projection_session_summaries",
    metadata,
    sa.Column("session_id", _Id, primary_key=True),
    sa.Column("stream_id", _Id, nullable=False),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("intent_id", _Id, nullable=False),
    sa.Column("user_turns", sa.Integer, nullable=False),
    sa.Column("tool_calls", sa.Integer, nullable=False),
    sa.Column("last_position", sa.BigInteger, nullable=False),
    # msgpack of `ise_es.projections.stats.SessionSummary`
    sa.Column("summary", _Blob, nullable=False),
)

replay_summaries = sa.Table(
    "projection_replay_summaries",
    metadata,
    sa.Column("replay_id", _Id, primary_key=True),
    sa.Column("source_stream", _Id, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("determinism", sa.Float, nullable=False),
)

audit_sessions = sa.Table(
    "projection_audit_sessions",
    metadata,
    sa.Column("session_id", _Id, primary_key=True),
    sa.Column("stream_id", _Id, nullable=False),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("user_turns", sa.Integer, nullable=False),
    sa.Column("tool_calls", sa.Integer, nullable=False),
    sa.Column("well_formed_calls", sa.Integer, nullable=False),
    sa.Column("findings", sa.Integer, nullable=False),
    sa.Column("last_position", sa.BigInteger, nullable=False),
)

audit_findings = sa.Table(
    "projection_audit_findings",
    metadata,
    sa.Column("session_id", _Id, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("rule", sa.String(64), nullable=False),
    sa.Column("turn", sa.Integer, nullable=True),
    sa.Column("call_id", _Id, nullable=True),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("ix_projection_audit_findings_rule", "rule"),
)

export_manifests = sa.Table(
    "projection_export_manifests",
    metadata,
    # absolute path of the export (the base name when split)
    sa.Column("output", sa.String(1000), primary_key=True),
    sa.Column("options_digest", sa.String(64), nullable=False),
    sa.Column("position", sa.BigInteger, nullable=False),
    # JSON: [{path, size, mtime_ns, samples}] of every file written
    sa.Column("files", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

session_index = sa.Table(
    "projection_session_index",
    metadata,
    # one row per session stream, written by ise_es.projections.sessionindex (migration 0004)
    sa.Column("session_id", _Id, primary_key=True),
    sa.Column("stream_id", _Id, nullable=False),
    sa.Column("intent_id", _Id, nullable=False),
    # the SessionEnded status, or "running" while the session has none
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("user_turns", sa.Integer, nullable=False),
    sa.Column("tool_calls", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    sa.Column("audit_flags", sa.Integer, nullable=False),
    # ",rule,rule," and ",tool,tool,": filters are one LIKE on a narrow row
    sa.Column("audit_rules", sa.String(1000), nullable=False),
    sa.Column("tools", sa.String(2000), nullable=False),
    sa.Column("replay_id", _Id, nullable=True),
    sa.Column("replay_verdict", sa.String(32), nullable=True),
    sa.Column("replay_determinism", sa.Float, nullable=True),
    sa.Column("last_position", sa.BigInteger, nullable=False),
    # msgpack of `ise_es.projections.stats.SessionSummary` (the viewer's corpus figures)
    sa.Column("summary", _Blob, nullable=False),
    sa.Index("ix_projection_session_index_started_at", "started_at"),
    sa.Index("ix_projection_session_index_status", "status"),
)

session_text = sa.Table(
    "projection_session_text",
    metadata,
    # lower-cased user turns, agent text and tool results (capped), for the viewer's search
    sa.Column("session_id", _Id, primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
)
