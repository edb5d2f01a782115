"""The work queue's state for /api/queue and the corpus page: the fleet's own summary
(`ise_es.fleet.status.queue_status`: counts by state, live workers, throughput, ETA) as JSON."""

from __future__ import annotations

from typing import Any

import msgspec

from ise_es.store.base import EventStore

__all__ = ["queue_json"]


def queue_json(store: EventStore) -> dict[str, Any]:
    from ise_es.fleet.status import queue_status

    body: dict[str, Any] = msgspec.to_builtins(queue_status(store))
    return {"available": True, **body}
