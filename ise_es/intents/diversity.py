"""Diversity items from intents: the store's accepted intents, or an intents JSONL file.

The report itself is `ise_es.diversity.report`; this module only turns intent records into
its items (text plus the slices: domains, industry, experience level).
"""

from __future__ import annotations

from pathlib import Path

from ise_es.diversity.report import DiversityItem, item_from_record
from ise_es.intents.jsonl import parse_intents_file
from ise_es.intents.library import Library
from ise_es.intents.records import PoolCache, iter_intents, reference_record
from ise_es.store.base import EventStore

__all__ = ["items_from_file", "items_from_intents"]


def items_from_intents(store: EventStore, library: Library) -> list[DiversityItem]:
    """Accepted intents of the store, generated and imported."""
    pools = PoolCache(store)
    items = []
    for rec in iter_intents(store):
        if rec.status != "accepted" or rec.text is None:
            continue
        items.append(
            item_from_record(reference_record(rec, library, pools), rec.text, rec.intent_id)
        )
    return items


def items_from_file(path: Path) -> list[DiversityItem]:
    """Intents of a reference-schema JSONL file (broken lines fail, naming file and line)."""
    parsed, _ = parse_intents_file(path)
    return [item_from_record(p.record, p.text, p.intent_id) for p in parsed]
