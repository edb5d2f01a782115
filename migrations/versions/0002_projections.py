"""Read-model tables of the projections (session summaries, replays, audits, export manifests).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_session_summaries",
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("intent_id", sa.String(200), nullable=False),
        sa.Column("user_turns", sa.Integer, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "projection_replay_summaries",
        sa.Column("replay_id", sa.String(200), primary_key=True),
        sa.Column("source_stream", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("determinism", sa.Float, nullable=False),
    )
    op.create_table(
        "projection_audit_sessions",
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("user_turns", sa.Integer, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("well_formed_calls", sa.Integer, nullable=False),
        sa.Column("findings", sa.Integer, nullable=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "projection_audit_findings",
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("turn", sa.Integer, nullable=True),
        sa.Column("call_id", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_projection_audit_findings_rule", "projection_audit_findings", ["rule"])
    op.create_table(
        "projection_export_manifests",
        sa.Column("output", sa.String(1000), primary_key=True),
        sa.Column("options_digest", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projection_export_manifests")
    op.drop_index("ix_projection_audit_findings_rule", "projection_audit_findings")
    op.drop_table("projection_audit_findings")
    op.drop_table("projection_audit_sessions")
    op.drop_table("projection_replay_summaries")
    op.drop_table("projection_session_summaries")
