"""Diversity items from recorded sessions: the first user turn of each, sliced by its intent
and persona (what `ise-es project diversity --source first-turns` measures).

The report is `ise_es.diversity.report`; accepted intents as items are
`ise_es.intents.diversity` (the presentation layer picks the source).
"""

from __future__ import annotations

from typing import Any

from ise_es.diversity.report import DiversityItem, item_from_record
from ise_es.events import SessionStarted, UserTurn
from ise_es.store.base import EventStore

__all__ = ["items_from_first_turns"]


def items_from_first_turns(store: EventStore) -> list[DiversityItem]:
    """The first user turn of every recorded session, sliced by its intent and persona."""
    started: dict[str, SessionStarted] = {}
    first: dict[str, str] = {}
    for ev in store.iter_all(types=["session_started", "user_turn"], batch=5000):
        if isinstance(ev.data, SessionStarted):
            started[ev.stream_id] = ev.data
        elif isinstance(ev.data, UserTurn) and ev.data.turn == 1:
            first.setdefault(ev.stream_id, ev.data.text)
    items = []
    for stream_id, text in first.items():
        s = started.get(stream_id)
        record: dict[str, Any] = dict(s.intent_record) if s is not None else {}
        if s is not None and s.persona:
            record.setdefault("metadata", {})
            if isinstance(record["metadata"], dict):
                record["metadata"] = {**record["metadata"], "persona": s.persona}
        items.append(item_from_record(record, text, s.session_id if s else stream_id))
    return items
