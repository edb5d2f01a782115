"""The intents read model: intent streams folded into records, and their reference-schema form.

An intent stream (`intent-<id>`) holds either IntentSampled + IntentRendered (generated), or
IntentImported + IntentRendered (imported), optionally followed by IntentRejected; a stream
with a rendered text and no rejection is an accepted intent.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any, Literal

import msgspec

from ise_es.events import (
    IntentImported,
    IntentRejected,
    IntentRendered,
    IntentSampled,
)
from ise_es.intents.library import Library
from ise_es.intents.personas import PersonaPool, load_pool
from ise_es.intents.render import neutral_description
from ise_es.store.base import EventStore

__all__ = [
    "INTENT_EVENT_TYPES",
    "REFERENCE_PERSONA_KEYS",
    "IntentRecord",
    "PoolCache",
    "intent_stream",
    "iter_intents",
    "load_intents",
    "reference_record",
]

INTENT_EVENT_TYPES = ("intent_sampled", "intent_rendered", "intent_imported", "intent_rejected")
REFERENCE_PERSONA_KEYS = (
    "name",
    "role",
    "industry",
    "expertise",
    "experience_level",
    "communication_style",
    "work_context",
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.]{1,100}$")


def intent_stream(intent_id: str) -> str:
    """The stream of an intent. Ids that would confuse the `<type>-<id>` convention (a '-',
    odd characters, very long) get a digest-named stream; the event keeps the id as written."""
    if _SAFE_ID.match(intent_id):
        return f"intent-{intent_id}"
    return f"intent-x{hashlib.sha256(intent_id.encode()).hexdigest()[:24]}"


class IntentRecord(msgspec.Struct, kw_only=True):
    intent_id: str
    stream_id: str
    position: int
    """Global position of the stream's first event (store order)."""
    sampled: IntentSampled | None = None
    imported: IntentImported | None = None
    rendered: IntentRendered | None = None
    rejected: IntentRejected | None = None

    @property
    def status(self) -> Literal["accepted", "rejected", "pending"]:
        if self.rejected is not None:
            return "rejected"
        return "accepted" if self.rendered is not None else "pending"

    @property
    def text(self) -> str | None:
        return self.rendered.text if self.rendered is not None else None


def _fold(records: dict[str, IntentRecord], stream_id: str, position: int, data: object) -> None:
    rec = records.get(stream_id)
    if rec is None:
        intent_id = getattr(data, "intent_id", stream_id.removeprefix("intent-"))
        rec = records[stream_id] = IntentRecord(
            intent_id=intent_id, stream_id=stream_id, position=position
        )
    if isinstance(data, IntentSampled):
        rec.sampled = data
    elif isinstance(data, IntentImported):
        rec.imported = data
    elif isinstance(data, IntentRendered):
        rec.rendered = data
    elif isinstance(data, IntentRejected):
        rec.rejected = data


def iter_intents(store: EventStore) -> Iterator[IntentRecord]:
    """Every intent in the store, in the order its stream began, including the latest writes.

    The bulk comes from one catch-up scan. That scan is complete only up to the store's safe
    horizon (on PostgreSQL it stops below any transaction still open anywhere on the server),
    so streams whose head version is ahead of what the scan saw are read again directly:
    a run that just recorded intents sees all of them.
    """
    records: dict[str, IntentRecord] = {}
    seen: dict[str, int] = {}
    for ev in store.iter_all(batch=5000, types=INTENT_EVENT_TYPES):
        _fold(records, ev.stream_id, ev.position, ev.data)
        seen[ev.stream_id] = max(seen.get(ev.stream_id, 0), ev.version)
    for info in store.streams(stream_type="intent"):
        if info.version <= seen.get(info.stream_id, 0):
            continue
        records.pop(info.stream_id, None)
        for ev in store.read_stream(info.stream_id):
            if ev.type in INTENT_EVENT_TYPES:
                _fold(records, ev.stream_id, ev.position, ev.data)
    yield from sorted(records.values(), key=lambda r: r.position)


def load_intents(store: EventStore) -> list[IntentRecord]:
    return list(iter_intents(store))


class PoolCache:
    """Frozen pools by id, read once each."""

    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._pools: dict[str, PersonaPool] = {}

    def get(self, pool_id: str) -> PersonaPool:
        if pool_id not in self._pools:
            self._pools[pool_id] = load_pool(self._store, pool_id)
        return self._pools[pool_id]


def reference_record(rec: IntentRecord, library: Library, pools: PoolCache) -> dict[str, Any]:
    """The intent in the reference JSONL schema (FORMATS.md section 4).

    Imported intents come back as they were written (with `id` set), so a reference file
    survives import + export unchanged; generated ones are built from their events, with
    ise-es specifics under `metadata.ise_es`.
    """
    if rec.imported is not None:
        record = dict(rec.imported.record)
        return {"id": rec.intent_id, **{k: v for k, v in record.items() if k != "id"}}
    s = rec.sampled
    if s is None:
        raise ValueError(f"intent {rec.intent_id} has neither a sample nor an import")
    persona: dict[str, Any] = {}
    if s.pool_id:
        p = pools.get(s.pool_id).by_id().get(s.persona_id)
        if p is not None:
            persona = {k: getattr(p, k) for k in REFERENCE_PERSONA_KEYS}
    domains = []
    for d_id in s.domains:
        d = library.domain(d_id)
        domains.append(
            {
                "name": d.id,
                "description": d.description,
                "selected_tasks": [
                    {"name": t.id, "description": neutral_description(t.description)}
                    for t in d.tasks
                    if t.id in s.tasks
                ],
            }
        )
    ise_es: dict[str, Any] = {"seed": s.seed, "index": s.index, "pool_id": s.pool_id}
    if rec.rendered is not None:
        ise_es |= {"renderer": rec.rendered.renderer, "model": rec.rendered.model}
    if rec.rejected is not None:
        ise_es |= {
            "rejected": rec.rejected.reason,
            "duplicate_of": rec.rejected.duplicate_of,
            "similarity": rec.rejected.similarity,
        }
    return {
        "id": rec.intent_id,
        "natural_language_intent": rec.text or "",
        "domains": list(s.domains),
        "tasks": list(s.tasks),
        "persona_id": s.persona_id,
        "tools_used": list(s.tools),
        "skills_used": [],
        "complexity": s.complexity,
        "metadata": {"persona": persona, "domains": domains, "ise_es": ise_es},
    }
