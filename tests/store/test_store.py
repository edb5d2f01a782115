"""The store contract, run against SQLite and PostgreSQL (fixture `store`)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ise_es.errors import BlobNotFound, ConcurrencyError, DuplicateEventId, InvalidEvent
from ise_es.events import OutputChunk, SessionEnded, UserTurn
from ise_es.store.base import NewEvent
from ise_es.store.sql import SqlEventStore, open_store


def turns(*texts: str) -> list[UserTurn]:
    return [UserTurn(turn=i + 1, text=t) for i, t in enumerate(texts)]


def test_append_then_read_stream_in_version_order(store: SqlEventStore) -> None:
    store.append("session-a", turns("one", "two"), 0)
    store.append("session-a", turns("three"), 2)
    got = store.read_stream("session-a")
    assert [e.version for e in got] == [1, 2, 3]
    assert [e.data.text for e in got] == ["one", "two", "three"]  # type: ignore[union-attr]


def test_read_stream_from_and_to_version(store: SqlEventStore) -> None:
    store.append("session-a", turns("a", "b", "c", "d"), 0)
    assert [e.version for e in store.read_stream("session-a", 2, to_version=3)] == [2, 3]


def test_stale_expected_version_writes_nothing(store: SqlEventStore) -> None:
    store.append("session-a", turns("a"), 0)
    with pytest.raises(ConcurrencyError, match="expected version 0"):
        store.append("session-a", turns("b"), 0)
    assert len(store.read_stream("session-a")) == 1


def test_new_stream_with_nonzero_expected_version_conflicts(store: SqlEventStore) -> None:
    with pytest.raises(ConcurrencyError):
        store.append("session-new", turns("a"), 3)
    assert store.read_stream("session-new") == []


def test_conflict_seen_by_a_second_store_instance(db_url: str) -> None:
    one, two = open_store(db_url), open_store(db_url)
    try:
        one.append("session-a", turns("a"), 0)
        two.append("session-a", turns("b"), 1)
        # `one` cached version 1 as the head; the database knows better.
        with pytest.raises(ConcurrencyError):
            one.append("session-a", turns("c"), 1)
        assert one.append("session-a", turns("c"), 2).version == 3
    finally:
        one.close()
        two.close()


def test_append_without_expected_version_appends_at_head(store: SqlEventStore) -> None:
    store.append("session-a", turns("a"), None)
    assert store.append("session-a", turns("b"), None).version == 2


def test_same_event_id_same_content_is_a_no_op(store: SqlEventStore) -> None:
    batch = [
        NewEvent(UserTurn(turn=1, text="a"), event_id="e1"),
        NewEvent(UserTurn(turn=2, text="b"), event_id="e2"),
    ]
    assert store.append("session-a", batch, 0).appended == 2
    again = store.append("session-a", batch, 0)
    assert (again.appended, again.version) == (0, 2)
    assert len(store.read_stream("session-a")) == 2


def test_same_event_id_other_content_is_an_error(store: SqlEventStore) -> None:
    store.append("session-a", [NewEvent(UserTurn(turn=1, text="a"), event_id="e1")], 0)
    with pytest.raises(DuplicateEventId, match="e1"):
        store.append("session-b", [NewEvent(UserTurn(turn=1, text="other"), event_id="e1")], 0)
    assert store.read_stream("session-b") == []


def test_invalid_payload_rejected_before_anything_is_written(store: SqlEventStore) -> None:
    good = UserTurn(turn=1, text="fine")
    bad = UserTurn(turn="one", text="wrong type")  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent, match=r"\$\.turn"):
        store.append("session-a", [good, bad], 0, blobs=[b"blob that must not land"])
    assert store.read_stream("session-a") == []
    assert store.streams() == []


def test_read_all_in_global_order_with_limit_and_types(store: SqlEventStore) -> None:
    store.append("session-a", turns("a1", "a2"), 0)
    store.append("session-b", [SessionEnded(status="completed")], 0)
    store.append("session-a", turns("a3"), 2)
    everything = store.read_all()
    assert [(e.stream_id, e.version) for e in everything] == [
        ("session-a", 1),
        ("session-a", 2),
        ("session-b", 1),
        ("session-a", 3),
    ]
    positions = [e.position for e in everything]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert [e.version for e in store.read_all(positions[1], limit=1)] == [1]
    assert [e.type for e in store.read_all(types=["session_ended"])] == ["session_ended"]
    assert [e.stream_id for e in store.iter_all(batch=1)] == [e.stream_id for e in everything]


def test_streams_listing_by_prefix_and_type(store: SqlEventStore) -> None:
    store.append("session-a", turns("x", "y"), 0)
    store.append("session-b", turns("x"), 0)
    store.append("replay-c", turns("x"), 0)
    store.append("persona-pool-d", turns("x"), 0)
    assert [s.stream_id for s in store.streams("session-")] == ["session-a", "session-b"]
    assert [s.stream_id for s in store.streams(stream_type="persona-pool")] == ["persona-pool-d"]
    info = store.streams("session-a")[0]
    assert (info.version, info.stream_type) == (2, "session")
    assert info.created_at <= info.updated_at


def test_prefix_wildcards_are_literal(store: SqlEventStore) -> None:
    store.append("session-a_1", turns("x"), 0)
    store.append("session-ab1", turns("x"), 0)
    assert [s.stream_id for s in store.streams("session-a_")] == ["session-a_1"]


def test_blobs_are_content_addressed_and_deduplicated(store: SqlEventStore) -> None:
    data = bytes(range(256)) * 1000
    digest = store.put_blob(data)
    assert store.put_blob(data) == digest
    assert store.get_blob(digest) == data
    assert store.get_blob(store.put_blob(b"")) == b""
    with pytest.raises(BlobNotFound):
        store.get_blob("0" * 64)


def test_blobs_written_with_the_events_that_cite_them(store: SqlEventStore) -> None:
    big = b"\xff\xfe not utf-8 " * 5000
    import hashlib

    store.append(
        "session-a", [OutputChunk(call_id="c", stream="stdout", seq=0, data=b"x")], 0, blobs=[big]
    )
    assert store.get_blob(hashlib.sha256(big).hexdigest()) == big


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "UPDATE blobs SET size = 0",
        "DELETE FROM blobs",
    ],
)
def test_database_rejects_updates_and_deletes(store: SqlEventStore, statement: str) -> None:
    store.append("session-a", turns("a"), 0, blobs=[b"some blob"])
    with (
        pytest.raises(sa.exc.DatabaseError, match="append-only"),
        store._engines.write.begin() as conn,
    ):
        conn.execute(sa.text(statement))
    assert len(store.read_stream("session-a")) == 1
    assert store.verify().ok


def test_verify_passes_on_a_healthy_store(store: SqlEventStore) -> None:
    for i in range(5):
        store.append(f"session-{i}", turns("a", "b", "c"), 0)
    report = store.verify()
    assert report.ok and (report.streams, report.events) == (5, 15)
