"""The viewer's session index: one narrow row per session (list, filters, sort) and its search
text, kept by the `session-index` read model (ise_es/projections/sessionindex.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projection_session_index",
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("intent_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("user_turns", sa.Integer, nullable=False),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("audit_flags", sa.Integer, nullable=False),
        sa.Column("audit_rules", sa.String(1000), nullable=False),
        sa.Column("tools", sa.String(2000), nullable=False),
        sa.Column("replay_id", sa.String(200), nullable=True),
        sa.Column("replay_verdict", sa.String(32), nullable=True),
        sa.Column("replay_determinism", sa.Float, nullable=True),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.Column("summary", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_projection_session_index_started_at", "projection_session_index", ["started_at"]
    )
    op.create_index("ix_projection_session_index_status", "projection_session_index", ["status"])
    op.create_table(
        "projection_session_text",
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("projection_session_text")
    op.drop_index("ix_projection_session_index_status", "projection_session_index")
    op.drop_index("ix_projection_session_index_started_at", "projection_session_index")
    op.drop_table("projection_session_index")
