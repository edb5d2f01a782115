"""The determinism rate of a corpus, read from the replay streams (ReplayEnded carries status,
counts and the determinism score; the statistics projection reads the same events): per session,
its most recent replay counts."""

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
    """Read from the replay streams. The catch-up read does the bulk; replay streams it has not
    reached yet (on PostgreSQL it stops below the oldest open transaction on the server) are
    read directly, so a replay that just ended is counted."""
    sources: dict[str, str] = {}
    ends: dict[str, tuple[float, ReplayEnded]] = {}
    for stored in store.iter_all(types=["replay_started", "replay_ended"], batch=5000):
        data = stored.data
        if isinstance(data, ReplayStarted):
            sources[stored.stream_id] = data.source_stream
        elif isinstance(data, ReplayEnded):
            ends[stored.stream_id] = (stored.recorded_at, data)
    for info in store.streams("replay-"):
        stream = info.stream_id
        if stream not in sources:
            head = store.read_stream(stream, 1, to_version=1)
            if head and isinstance(head[0].data, ReplayStarted):
                sources[stream] = head[0].data.source_stream
        if stream not in ends:
            last = store.read_stream(stream, info.version, to_version=info.version)
            if last and isinstance(last[0].data, ReplayEnded):
                ends[stream] = (last[0].recorded_at, last[0].data)
    latest: dict[str, tuple[float, str, ReplayEnded]] = {}
    for stream, (at, ended) in ends.items():
        source = sources.get(stream)
        if source is None:
            continue
        key = (at, stream, ended)
        if source not in latest or key[:2] > latest[source][:2]:
            latest[source] = key
    finals = [e for _, _, e in latest.values()]
    statuses = Counter(e.status for e in finals)
    n = len(finals)
    return DeterminismRate(
        replays=sum(1 for s in ends if s in sources),
        sessions=n,
        statuses=dict(sorted(statuses.items())),
        reproducible_rate=(statuses["reproduced"] + statuses["equivalent"]) / n if n else None,
        step_rate=sum(e.determinism for e in finals) / n if n else None,
    )
