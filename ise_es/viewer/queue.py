"""The work queue's state for /api/queue and the corpus page.

The queue's summary is the fleet package's (`ise_es.fleet.status.queue_status`); the viewer
only turns it into JSON. A store without that package answers `available: false` and why,
so the page can say so instead of failing.
"""

from __future__ import annotations

import importlib
from typing import Any

import msgspec

from ise_es.store.base import EventStore

__all__ = ["queue_json"]


def queue_json(store: EventStore) -> dict[str, Any]:
    try:
        module = importlib.import_module("ise_es.fleet.status")
    except ImportError:
        return {
            "available": False,
            "reason": "this ise-es has no work-queue summary (ise_es.fleet.status)",
        }
    summary = module.queue_status(store)
    body = msgspec.to_builtins(summary)
    return (
        {"available": True, **body}
        if isinstance(body, dict)
        else {"available": True, "queue": body}
    )
