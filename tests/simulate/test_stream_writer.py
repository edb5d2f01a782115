"""The recorder's StreamWriter: grouped appends, in order, blobs with their events."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from ise_es.errors import ConcurrencyError
from ise_es.events import OutputChunk, UserTurn
from ise_es.simulate.session import StreamWriter
from ise_es.store.sql import SqlEventStore


def chunk(i: int) -> OutputChunk:
    return OutputChunk(call_id="c", stream="stdout", seq=i, data=str(i).encode())


def test_events_land_in_order_across_timer_flushes(store: SqlEventStore) -> None:
    writer = StreamWriter(store, "session-w", max_delay=0.005, max_pending=7)
    for i in range(200):
        writer.emit(chunk(i))
        if i % 13 == 0:
            time.sleep(0.01)  # let the timer flush in the middle of the run
    writer.flush()
    events = store.read_stream("session-w")
    assert [e.data.seq for e in events] == list(range(200))  # type: ignore[union-attr]
    assert [e.event_id for e in events] == [f"session-w:{v}" for v in range(1, 201)]
    assert 1 < len(writer.append_latencies) < 200, "grouped, but not all at the end"


def test_events_reach_the_store_within_the_delay_without_a_flush(store: SqlEventStore) -> None:
    writer = StreamWriter(store, "session-live", max_delay=0.05)
    writer.emit(chunk(0))
    deadline = time.monotonic() + 5
    while not store.read_stream("session-live"):
        assert time.monotonic() < deadline, "a pending event never reached the store"
        time.sleep(0.01)


def test_a_blob_lands_with_the_event_that_cites_it(store: SqlEventStore) -> None:
    writer = StreamWriter(store, "session-b", max_delay=10)
    digest = writer.put_blob(b"full output" * 100)
    assert digest == hashlib.sha256(b"full output" * 100).hexdigest()
    writer.emit(chunk(0))
    writer.flush()
    assert store.get_blob(digest) == b"full output" * 100


def test_a_failed_append_keeps_the_events_for_a_retry(store: SqlEventStore) -> None:
    writer = StreamWriter(store, "session-c", max_delay=10)
    writer.record([UserTurn(turn=1, text="mine")], [])
    store.append("session-c", [UserTurn(turn=1, text="someone else")], 0)
    with pytest.raises(ConcurrencyError):
        writer.flush()
    writer.version = 1  # the caller decides; the events were not lost
    writer.flush()
    assert [e.data.text for e in store.read_stream("session-c")] == ["someone else", "mine"]  # type: ignore[union-attr]


def test_recording_thread_is_not_blocked_by_a_slow_background_append(store: SqlEventStore) -> None:
    writer = StreamWriter(store, "session-d", max_delay=0.001)
    release = threading.Event()
    real_append = store.append

    def slow_append(*args: object, **kwargs: object) -> object:
        release.wait(5)
        return real_append(*args, **kwargs)  # type: ignore[arg-type]

    store.append = slow_append  # type: ignore[method-assign]
    try:
        writer.emit(chunk(0))
        time.sleep(0.05)  # the timer is now inside the slow append
        started = time.monotonic()
        writer.emit(chunk(1))
        assert time.monotonic() - started < 0.5
    finally:
        release.set()
        store.append = real_append  # type: ignore[method-assign]
    writer.flush()
    assert [e.data.seq for e in store.read_stream("session-d")] == [0, 1]  # type: ignore[union-attr]


def test_on_event_sees_every_recorded_event_in_order(store: SqlEventStore) -> None:
    seen: list[object] = []
    writer = StreamWriter(store, "session-e", max_delay=10, on_event=seen.append)
    writer.emit(chunk(0))
    writer.put_blob(b"cited")
    writer.record([chunk(1), chunk(2)], [])
    assert [e.seq for e in seen] == [0, 1, 2]  # type: ignore[attr-defined]
    assert store.read_stream("session-e") == [], "seen when queued, before the append"
    writer.flush()
    assert [e.data for e in store.read_stream("session-e")] == seen
