"""The work queue: one row per (intent or scenario id, content digest), claimed with leases.

The upgrade backfills the queue from the sessions already in the log, so a corpus recorded
before the queue existed keeps its history: an intent whose session ended (any status but
`interrupted`) becomes a `done` item; an intent with only interrupted or unfinished sessions
becomes a `failed` item with nothing to record (its spec is unknown) whose unfinished session is
closed `interrupted` by the next worker. Backfilled items carry an empty digest, and the first
enqueue of their id adopts them whatever its content (see ise_es/store/queue.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
import time
import uuid

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("lease_token", sa.String(64), nullable=True),
        sa.Column("worker_id", sa.String(200), nullable=True),
        sa.Column("host", sa.String(200), nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("leased_at", sa.Float, nullable=True),
        sa.Column("heartbeat_at", sa.Float, nullable=True),
        sa.Column("lease_expires", sa.Float, nullable=True),
        sa.Column("session_id", sa.String(200), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.UniqueConstraint("source_id", "digest", name="uq_work_items_source_digest"),
    )
    op.create_index("ix_work_items_claim", "work_items", ["state", "enqueued_at", "item_id"])
    op.create_index("ix_work_items_finished", "work_items", ["finished_at"])
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT stream_id, type, payload, recorded_at FROM events "
            "WHERE type IN ('session_started', 'session_ended') ORDER BY position"
        )
    )
    intent_of: dict[str, str] = {}
    ended: dict[str, tuple[str, float]] = {}
    for stream_id, event_type, payload, recorded_at in rows:
        data = json.loads(payload)
        if event_type == "session_started":
            intent_of[stream_id] = str(data.get("intent_id", ""))
        else:
            ended[stream_id] = (str(data.get("status", "")), float(recorded_at))
    items: dict[str, dict[str, object]] = {}
    attempts: dict[str, int] = {}
    now = time.time()
    for stream_id, intent_id in intent_of.items():
        item = items.setdefault(
            intent_id,
            {
                "item_id": uuid.uuid4().hex,
                "source_id": intent_id,
                "digest": "",
                "kind": "backfilled",
                "spec": "{}",
                "state": "failed",
                "status": None,
                "attempts": 0,
                "failures": 0,
                "not_before": 0.0,
                "session_id": stream_id.removeprefix("session-"),
                "last_error": "recorded before the work queue existed: enqueue it again",
                "enqueued_at": now,
                "finished_at": None,
            },
        )
        attempts[intent_id] = attempts.get(intent_id, 0) + 1
        item["attempts"] = attempts[intent_id]
        end = ended.get(stream_id)
        if end is None:
            # Never ended: a lease that expired long ago, so the next worker closes it.
            item.update(state="leased", lease_token=uuid.uuid4().hex, lease_expires=0.0)
            item["session_id"] = stream_id.removeprefix("session-")
        elif end[0] != "interrupted" and item["state"] != "done":
            item.update(
                state="done",
                status=end[0],
                lease_token=None,
                lease_expires=None,
                session_id=stream_id.removeprefix("session-"),
                last_error=None,
                finished_at=end[1],
            )
    if items:
        values = [{"lease_token": None, "lease_expires": None, **item} for item in items.values()]
        table = sa.table("work_items", *(sa.column(name) for name in values[0]))
        bind.execute(table.insert(), values)


def downgrade() -> None:
    op.drop_index("ix_work_items_finished", "work_items")
    op.drop_index("ix_work_items_claim", "work_items")
    op.drop_table("work_items")
