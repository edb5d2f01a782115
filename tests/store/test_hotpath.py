"""The store's hot paths: inlined hashing, the DBAPI connection pool, time-ordered event ids."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import threading
import time
import typing
import uuid

import psycopg
import pytest

from ise_es.errors import InvalidEvent, StoreUnavailable
from ise_es.events import (
    Event,
    ModelCall,
    SessionEnded,
    ToolCallFinished,
    Usage,
    UserTurn,
    encode_payload,
)
from ise_es.store.appends import HeadCache
from ise_es.store.base import NewEvent, StoredEvent, new_event_id
from ise_es.store.sql import SqlEventStore, chain_hash, encode_events, open_store


def settled(store: SqlEventStore, count: int, timeout: float = 60) -> list[StoredEvent]:
    """read_all once `count` events are below the catch-up horizon. On PostgreSQL the horizon
    is the oldest transaction running anywhere on the server, and other test suites share it."""
    deadline = time.monotonic() + timeout
    while True:
        got = store.read_all(0, 100_000)
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_appended_hashes_are_chain_hash(store: SqlEventStore) -> None:
    store.append("session-a", [UserTurn(turn=1, text="one"), SessionEnded(status="completed")], 0)
    store.append("session-a", [UserTurn(turn=2, text="two \u00e9\n\\")], 2)
    previous = ""
    for event in store.read_stream("session-a"):
        previous = chain_hash(
            previous,
            stream_id=event.stream_id,
            version=event.version,
            event_id=event.event_id,
            event_type=event.type,
            schema_version=event.schema_version,
            recorded_at=event.recorded_at,
            payload=encode_payload(event.data),
        )
        assert event.hash == previous
    assert store.streams("session-a")[0].head_hash == previous


def test_threads_append_at_once_through_one_store(store: SqlEventStore) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def own_stream(i: int) -> None:
        try:
            start.wait()
            version = 0
            for b in range(10):
                batch = [UserTurn(turn=b, text=f"t{i} b{b} e{e}") for e in range(5)]
                version = store.append(f"session-t{i}", batch, version).version
        except BaseException as e:  # handed to the main thread
            errors.append(e)

    def shared_stream(i: int) -> None:
        try:
            start.wait()
            for b in range(10):
                store.append("session-shared", [UserTurn(turn=b, text=f"s{i} b{b}")] * 3, None)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=own_stream, args=(i,)) for i in range(5)]
    threads += [threading.Thread(target=shared_stream, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    for i in range(5):
        assert [e.version for e in store.read_stream(f"session-t{i}")] == list(range(1, 51))
    shared = store.read_stream("session-shared")
    assert [e.version for e in shared] == list(range(1, 91))
    everything = settled(store, 5 * 50 + 90)
    assert len(everything) == 5 * 50 + 90
    assert len({e.position for e in everything}) == len(everything)
    assert store.verify().ok


def _use_in_child(store: SqlEventStore, parents: set[int], result: mp.Queue[object]) -> None:
    conn = store._pool.get()
    result.put(id(conn) in parents)
    store._pool.put(conn)
    result.put(store.append("session-child", [UserTurn(turn=1, text="from the child")], 0).version)
    result.put([s.stream_id for s in store.streams()])
    store.close()  # must not close what the parent still uses


def test_a_forked_child_opens_its_own_connections(store: SqlEventStore) -> None:
    store.append("session-parent", [UserTurn(turn=1, text="before the fork")], 0)
    assert store.streams()
    parents = {id(c) for c in store._pool._idle}
    ctx = mp.get_context("fork")
    result: mp.Queue[object] = ctx.Queue()
    child = ctx.Process(target=_use_in_child, args=(store, parents, result))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert [result.get(timeout=5) for _ in range(3)] == [
        False,
        1,
        ["session-child", "session-parent"],
    ]
    # The parent's connections, raw and SQLAlchemy's, still work.
    assert store.append("session-parent", [UserTurn(turn=2, text="after")], 1).version == 2
    assert len(store.streams()) == 2
    assert [e.stream_id for e in settled(store, 3)] == [
        "session-parent",
        "session-child",
        "session-parent",
    ]


@pytest.mark.postgres
def test_a_dropped_connection_is_replaced(pg_url: str) -> None:
    store = open_store(pg_url)
    try:
        store.append("session-a", [UserTurn(turn=1, text="a")], 0)
        conn = store._pool.get()
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        store._pool.put(conn)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(StoreUnavailable, match="cannot open database"):
            store.append("session-a", [UserTurn(turn=2, text="b")], 1)
        assert store.append("session-a", [UserTurn(turn=2, text="b")], 1).version == 2
    finally:
        store.close()


def test_event_ids_are_uuid7_ascending_within_a_process() -> None:
    ids = [new_event_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(hex=i) for i in ids]
    assert {(u.version, u.variant) for u in parsed} == {(7, uuid.RFC_4122)}
    assert all(len(i) == 32 for i in ids)
    # Ascending except where the 12-bit counter wraps within one millisecond.
    descents = sum(1 for a, b in itertools.pairwise(ids) if b < a)
    assert descents <= 1


def _ids_in_child(result: mp.Queue[list[str]]) -> None:
    result.put([new_event_id() for _ in range(200)])


def test_a_forked_child_does_not_repeat_its_parents_ids() -> None:
    ctx = mp.get_context("fork")
    result: mp.Queue[list[str]] = ctx.Queue()
    child = ctx.Process(target=_ids_in_child, args=(result,))
    child.start()
    mine = [new_event_id() for _ in range(200)]
    theirs = result.get(timeout=30)
    child.join(30)
    # Same milliseconds and counters are likely; the salted low bits must differ.
    assert not {i[16:] for i in mine} & {i[16:] for i in theirs}


def test_new_event_given_no_id_gets_a_fresh_one() -> None:
    first, second = NewEvent(UserTurn(turn=1, text="x")), NewEvent(UserTurn(turn=1, text="x"))
    assert first.event_id != second.event_id


def test_the_head_cache_keeps_the_streams_written_last() -> None:
    cache = HeadCache(2)
    cache.remember("a", (1, "a1", 1))
    cache.remember("b", (1, "b1", 2))
    cache.remember("a", (2, "a2", 1))  # written again: now the most recent
    cache.remember("c", (1, "c1", 3))  # one too many: b, the oldest, goes
    assert cache.get("b", 1) is None
    assert cache.get("a", 2) == (2, "a2", 1)
    assert cache.get("c", 1) == (1, "c1", 3)
    assert cache.get("a", 1) is None  # expecting another version: the head is read instead
    assert cache.get("c", None) is None  # no expected version: the head is read and locked
    assert cache.get("new", 0) == (0, "", 0)
    cache.forget("a")
    assert cache.get("a", 2) is None


def test_a_large_append_is_written_whole(store: SqlEventStore) -> None:
    # More rows than one SQLite multi-row INSERT carries.
    batch = [UserTurn(turn=i, text=f"event {i}") for i in range(1203)]
    assert store.append("session-big", batch, 0).version == 1203
    got = store.read_stream("session-big")
    assert [e.version for e in got] == list(range(1, 1204))
    assert [e.data.turn for e in got] == list(range(1203))  # type: ignore[union-attr]
    assert store.verify().ok


def test_control_characters_in_payloads_round_trip(store: SqlEventStore) -> None:
    # PostgreSQL appends pack fields with 0x1f between them (see store/_sql.py): JSON must
    # escape it inside strings, so a payload full of control characters comes back intact.
    text = "unit\x1fseparator\x1e record\x00 nul \\x1f literal"
    store.append("session-a", [UserTurn(turn=1, text=text)], 0)
    assert store.read_stream("session-a")[0].data == UserTurn(turn=1, text=text)
    assert store.verify().ok


def test_a_large_append_repeated_is_a_no_op(store: SqlEventStore) -> None:
    batch = [NewEvent(UserTurn(turn=i, text="x"), event_id=f"e{i}") for i in range(1203)]
    store.append("session-big", batch, 0)
    again = store.append("session-big", batch, 0)
    assert (again.appended, again.version) == (0, 1203)


def test_encode_events_agrees_with_encode_checked_for_every_event_type() -> None:
    """encode_events inlines encode_checked with a per-class table; every event class must be
    in it with its own tag, schema version and validating decoder."""
    from ise_es.events import EVENT_TYPES, encode_checked
    from ise_es.store.appends import _KINDS

    assert {cls: (tag, cls.schema_version) for tag, cls in EVENT_TYPES.items()} == _KINDS
    assert set(typing.get_args(Event)) == set(EVENT_TYPES.values())
    sample = [UserTurn(turn=1, text="a"), SessionEnded(status="completed")]
    got = encode_events([NewEvent(sample[0], event_id="e1"), sample[1]])
    assert [g[1:] for g in got] == [encode_checked(e) for e in sample]
    assert got[0][0] == "e1" and len(got[1][0]) == 32


@pytest.mark.parametrize(
    "bad",
    [
        UserTurn(turn="one", text="x"),  # type: ignore[arg-type]
        ToolCallFinished(call_id=1, tool="exec", result_text="x"),  # type: ignore[arg-type]
        ModelCall(role="agent", model="m", usage=Usage(prompt_tokens="9")),  # type: ignore[arg-type]
    ],
)
def test_encode_events_refuses_what_the_event_model_would_not_read_back(bad: object) -> None:
    """A Struct does not check its fields on construction and encodes a wrong-typed one without
    complaint, so encoding alone guarantees nothing: the validating decode is what refuses it
    (with encode_checked's message, naming the field), top-level or nested."""
    from ise_es.events import encode_checked

    encode_payload(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent) as caught:
        encode_events([NewEvent(bad)])  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent) as direct:
        encode_checked(bad)
    assert str(caught.value) == str(direct.value) and "$." in str(caught.value)
    with pytest.raises(InvalidEvent, match="not an ise-es event"):
        encode_events([Usage()])  # type: ignore[arg-type]
