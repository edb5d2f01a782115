"""The work queue the store owns: enqueue by content digest, claims, leases, fencing, reclaim,
retry, and the backfill of an existing corpus. Every test runs on SQLite and PostgreSQL. The
lease fencing of appends is part of the store contract: tests/store/conformance.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from ise_es.events import SessionEnded
from ise_es.store import migrate
from ise_es.store.base import WorkerInfo
from ise_es.store.sql import SqlEventStore, open_store
from tests.store.conformance import WORKER, Clock, item, started
from tests.store.oldschema import write_streams


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def qstore(db_url: str, clock: Clock) -> Iterator[SqlEventStore]:
    s = open_store(db_url, clock=clock)
    yield s
    s.close()


def test_same_content_twice_is_a_no_op(qstore: SqlEventStore) -> None:
    first = qstore.queue.enqueue([item("a"), item("b")])
    again = qstore.queue.enqueue([item("a"), item("b")])
    assert len(first.added) == 2 and first.unchanged == 0
    assert again.added == [] and again.unchanged == 2
    assert len(qstore.queue.items()) == 2


def test_changed_content_is_a_new_version_and_supersedes_the_old(qstore: SqlEventStore) -> None:
    qstore.queue.enqueue([item("a", "d1")])
    lease = qstore.queue.claim(WORKER, lease_seconds=60)
    assert lease is not None
    assert qstore.queue.finish(lease.fence, outcome="done", status="completed") == "done"
    result = qstore.queue.enqueue([item("a", "d2")])
    assert len(result.added) == 1
    assert result.superseded == [lease.session_id]
    states = {r.digest: r.state for r in qstore.queue.items()}
    assert states == {"d1": "superseded", "d2": "queued"}


def test_claims_come_in_enqueue_order_and_only_when_due(qstore: SqlEventStore) -> None:
    qstore.queue.enqueue([item(f"i{n}") for n in range(5)])
    claimed = []
    while (lease := qstore.queue.claim(WORKER, lease_seconds=60)) is not None:
        claimed.append(lease.source_id)
        assert lease.attempt == 1
    assert claimed == [f"i{n}" for n in range(5)]


def test_concurrent_claims_never_hand_out_an_item_twice(qstore: SqlEventStore) -> None:
    qstore.queue.enqueue([item(f"i{n}") for n in range(40)])
    got: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        worker = WorkerInfo(worker_id=f"w{n}", host="test", pid=n)
        while (lease := qstore.queue.claim(worker, lease_seconds=60)) is not None:
            with lock:
                got.append(lease.item_id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 40 and len(set(got)) == 40


def test_reclaim_reads_the_log_a_session_that_ended_makes_the_item_done(
    qstore: SqlEventStore, clock: Clock
) -> None:
    qstore.queue.enqueue([item("a")])
    lease = qstore.queue.claim(WORKER, lease_seconds=10)
    assert lease is not None
    stream = f"session-{lease.session_id}"
    qstore.append(stream, [started("a"), SessionEnded(status="completed")], 0, fence=lease.fence)
    clock.now += 11  # the worker died after its last append, before releasing the lease
    [expired] = qstore.queue.expire(max_attempts=3)
    assert expired.state == "done" and expired.session_id is None
    row = qstore.queue.items()[0]
    assert (row.state, row.status) == ("done", "completed")


def test_retries_back_off_then_fail_after_max_attempts(qstore: SqlEventStore, clock: Clock) -> None:
    qstore.queue.enqueue([item("a")])
    states = []
    for _ in range(3):
        lease = qstore.queue.claim(WORKER, lease_seconds=60)
        assert lease is not None
        state = qstore.queue.finish(
            lease.fence, outcome="retry", status="error", error="endpoint down", retry_after=30
        )
        states.append(state)
        assert qstore.queue.claim(WORKER, lease_seconds=60) is None  # backing off
        clock.now += 31
    assert states == ["queued", "queued", "failed"]
    row = qstore.queue.items()[0]
    assert (row.state, row.failures, row.last_error) == ("failed", 3, "endpoint down")
    assert qstore.queue.retry(statuses=["failed"]) == 1
    lease = qstore.queue.claim(WORKER, lease_seconds=60)
    assert lease is not None and lease.attempt == 4


def test_retry_by_session_status_and_force(qstore: SqlEventStore) -> None:
    qstore.queue.enqueue([item("a"), item("b")])
    for status in ("turn_cap", "completed"):
        lease = qstore.queue.claim(WORKER, lease_seconds=60)
        assert lease is not None
        qstore.queue.finish(lease.fence, outcome="done", status=status)
    assert qstore.queue.retry(statuses=["turn_cap"]) == 1
    assert [r.source_id for r in qstore.queue.items(states=["queued"])] == ["a"]
    forced = qstore.queue.enqueue([item("b")], force=True)
    assert len(forced.added) == 1
    assert {r.source_id for r in qstore.queue.items(states=["queued"])} == {"a", "b"}


def test_upgrade_backfills_the_queue_from_recorded_sessions(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "0002")
    write_streams(
        empty_db_url,
        {
            "session-1": [started("done-one"), SessionEnded(status="turn_cap")],
            "session-2": [started("cut-off")],
            "session-3": [started("cut-off")],
            "session-3b": [SessionEnded(status="interrupted")],
        },
    )
    migrate.upgrade(empty_db_url)
    with open_store(empty_db_url) as s:
        rows = {r.source_id: r for r in s.queue.items()}
        assert (rows["done-one"].state, rows["done-one"].status) == ("done", "turn_cap")
        assert rows["cut-off"].attempts == 2 and rows["cut-off"].digest == ""
        # The first enqueue of a backfilled id adopts it: done stays done...
        adopted = s.queue.enqueue([item("done-one", "new"), item("cut-off", "new")])
        assert adopted.unchanged == 1 and adopted.superseded == []
        states = {r.source_id: (r.state, r.digest) for r in s.queue.items()}
        # ...and the one whose session never ended is still leased (long expired) until a
        # worker reclaims it and closes that session.
        assert states["done-one"] == ("done", "new")
        assert states["cut-off"][1] == "new"
        expired = s.queue.expire(max_attempts=3)
        assert [(e.source_id, e.state) for e in expired] == [("cut-off", "queued")]


def test_claim_can_be_limited_to_given_items(qstore: SqlEventStore) -> None:
    result = qstore.queue.enqueue([item("a"), item("b")])
    lease = qstore.queue.claim(WORKER, lease_seconds=60, only=[result.added[1]])
    assert lease is not None and lease.source_id == "b"
    assert qstore.queue.claim(WORKER, lease_seconds=60, only=[result.added[1]]) is None


def test_counts_and_throughput(qstore: SqlEventStore, clock: Clock) -> None:
    qstore.queue.enqueue([item("a"), item("b"), item("c")])
    lease = qstore.queue.claim(WORKER, lease_seconds=60)
    assert lease is not None
    qstore.queue.finish(lease.fence, outcome="done", status="completed")
    qstore.queue.claim(WORKER, lease_seconds=60)
    assert qstore.queue.counts() == {
        ("done", "completed"): 1,
        ("leased", None): 1,
        ("queued", None): 1,
    }
    assert qstore.queue.finished_since(clock.now - 1) == 1
    assert qstore.queue.finished_since(clock.now + 1) == 0


def test_retry_can_be_limited_to_given_items(qstore: SqlEventStore) -> None:
    result = qstore.queue.enqueue([item("a"), item("b")])
    for _ in range(2):
        lease = qstore.queue.claim(WORKER, lease_seconds=60)
        assert lease is not None
        qstore.queue.finish(lease.fence, outcome="retry", status="error", max_attempts=1)
    assert qstore.queue.retry(statuses=["failed"], item_ids=result.added[:1]) == 1
    assert {r.source_id: r.state for r in qstore.queue.items()} == {"a": "queued", "b": "failed"}
