"""The determinism rate of a corpus, read from the replay streams (the hook the statistics
projection and `ise-es replay --all` share): per session, its most recent replay counts."""

from __future__ import annotations

from collections import Counter

import msgspec

from ise_es.events import ReplayEnded, ReplayStarted
from ise_es.store.base import EventStore

__all__ = ["DeterminismRate", "determinism_rate"]


class DeterminismRate(msgspec.Struct, frozen=True, kw_only=True):
    replays: int
    """Replay streams that ended (any number per session)."""
    sessions: int
    """Distinct sessions replayed; the rates below use each one's latest replay."""
    statuses: dict[str, int]
    """Latest replay status per session: reproduced, equivalent, diverged, failed."""
    reproducible_rate: float | None
    """Share of sessions whose latest replay was reproduced or equivalent."""
    step_rate: float | None
    """Mean over sessions of the latest replay's share of identical-or-equivalent steps."""


def determinism_rate(store: EventStore) -> DeterminismRate:
    sources: dict[str, str] = {}
    latest: dict[str, ReplayEnded] = {}
    replays = 0
    for stored in store.iter_all(types=["replay_started", "replay_ended"], batch=5000):
        data = stored.data
        if isinstance(data, ReplayStarted):
            sources[stored.stream_id] = data.source_stream
        elif isinstance(data, ReplayEnded) and stored.stream_id in sources:
            replays += 1
            # Catch-up order is commit order, so a later event is a later replay.
            latest[sources[stored.stream_id]] = data
    statuses = Counter(e.status for e in latest.values())
    n = len(latest)
    return DeterminismRate(
        replays=replays,
        sessions=n,
        statuses=dict(sorted(statuses.items())),
        reproducible_rate=(statuses["reproduced"] + statuses["equivalent"]) / n if n else None,
        step_rate=sum(e.determinism for e in latest.values()) / n if n else None,
    )
