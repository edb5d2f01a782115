"""The store contract as one abstract test class, run for every backend.

`StoreConformance` holds every behaviour the `EventStore` protocol promises: append (all or
nothing, optimistic concurrency), idempotency by event id, reads by stream and by global
position, blobs, stream heads and verification, catch-up reads that never skip an event while
writers run, the lease fencing of the work queue, and the checkpointed read-model writes.
`tests/store/test_sqlite.py` and `tests/store/test_postgres.py` subclass it with their
backend, the way eventsourcing reuses its recorder test case for every database; a new
backend gets the whole suite by subclassing it once.

The tests speak the protocol (`EventStore`); `open` is the one place that names the
implementation. Tests specific to one database (the PostgreSQL sequence gap, the SQLite
header check) stay in their own modules.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sqlalchemy as sa

from ise_es.errors import (
    BlobNotFound,
    ConcurrencyError,
    DuplicateEventId,
    InvalidEvent,
    LeaseLost,
)
from ise_es.events import OutputChunk, SessionEnded, SessionStarted, UserTurn
from ise_es.store.base import EventStore, Fence, NewEvent, NewWorkItem, WorkerInfo
from ise_es.store.engine import connect_engines
from ise_es.store.sql import open_store

ROOT = Path(__file__).resolve().parents[2]
WORKER = WorkerInfo(worker_id="w1", host="test", pid=1)


def turns(*texts: str) -> list[UserTurn]:
    return [UserTurn(turn=i + 1, text=t) for i, t in enumerate(texts)]


def item(source_id: str, digest: str = "d1") -> NewWorkItem:
    return NewWorkItem(source_id=source_id, kind="intent", digest=digest, spec=b'{"x": 1}')


def started(intent_id: str) -> SessionStarted:
    return SessionStarted(session_id="s", intent_id=intent_id, intent="do it")


class Clock:
    """The store's injected clock, moved by hand (lease expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def spawn(*args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.store.procs", *map(str, args)], cwd=ROOT)


class StoreConformance:
    """Subclass with `backend = "sqlite"` or `"postgres"` (the name of a migrated-URL fixture
    of tests/conftest.py: `sqlite_url`, `pg_url`)."""

    backend: ClassVar[str]

    def open(self, url: str, **kwargs: Any) -> EventStore:
        return open_store(url, **kwargs)

    @pytest.fixture
    def url(self, request: pytest.FixtureRequest) -> str:
        fixture = {"sqlite": "sqlite_url", "postgres": "pg_url"}[self.backend]
        return str(request.getfixturevalue(fixture))

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def store(self, url: str, clock: Clock) -> Iterator[EventStore]:
        s = self.open(url, clock=clock)
        yield s
        s.close()

    # ------------------------------------------------------------ append, reads, blobs

    def test_append_then_read_stream_in_version_order(self, store: EventStore) -> None:
        store.append("session-a", turns("one", "two"), 0)
        store.append("session-a", turns("three"), 2)
        got = store.read_stream("session-a")
        assert [e.version for e in got] == [1, 2, 3]
        assert [e.data.text for e in got] == ["one", "two", "three"]  # type: ignore[union-attr]

    def test_read_stream_from_and_to_version(self, store: EventStore) -> None:
        store.append("session-a", turns("a", "b", "c", "d"), 0)
        assert [e.version for e in store.read_stream("session-a", 2, to_version=3)] == [2, 3]

    def test_stale_expected_version_writes_nothing(self, store: EventStore) -> None:
        store.append("session-a", turns("a"), 0)
        with pytest.raises(ConcurrencyError, match="expected version 0"):
            store.append("session-a", turns("b"), 0)
        assert len(store.read_stream("session-a")) == 1

    def test_new_stream_with_nonzero_expected_version_conflicts(self, store: EventStore) -> None:
        with pytest.raises(ConcurrencyError):
            store.append("session-new", turns("a"), 3)
        assert store.read_stream("session-new") == []

    def test_conflict_seen_by_a_second_store_instance(self, url: str) -> None:
        one, two = self.open(url), self.open(url)
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

    def test_append_without_expected_version_appends_at_head(self, store: EventStore) -> None:
        store.append("session-a", turns("a"), None)
        assert store.append("session-a", turns("b"), None).version == 2

    def test_same_event_id_same_content_is_a_no_op(self, store: EventStore) -> None:
        batch = [
            NewEvent(UserTurn(turn=1, text="a"), event_id="e1"),
            NewEvent(UserTurn(turn=2, text="b"), event_id="e2"),
        ]
        assert store.append("session-a", batch, 0).appended == 2
        again = store.append("session-a", batch, 0)
        assert (again.appended, again.version) == (0, 2)
        assert len(store.read_stream("session-a")) == 2

    def test_a_retry_with_other_content_is_an_error(self, store: EventStore) -> None:
        store.append("session-a", [NewEvent(UserTurn(turn=1, text="a"), event_id="e1")], 0)
        with pytest.raises(DuplicateEventId, match="e1"):
            store.append("session-a", [NewEvent(UserTurn(turn=1, text="other"), event_id="e1")], 0)
        assert [e.data.text for e in store.read_stream("session-a")] == ["a"]  # type: ignore[union-attr]

    def test_a_retry_of_part_of_a_stored_append_is_an_error(self, store: EventStore) -> None:
        batch = [NewEvent(UserTurn(turn=i, text=str(i)), event_id=f"e{i}") for i in (1, 2)]
        store.append("session-a", batch, 0)
        with pytest.raises(DuplicateEventId, match="1 of 2 event ids"):
            store.append("session-a", [batch[0], NewEvent(UserTurn(turn=3, text="3"))], 0)
        assert len(store.read_stream("session-a")) == 2

    def test_a_retry_after_others_appended_is_still_a_no_op(self, url: str) -> None:
        # The first try committed but its reply was lost; another writer appended since.
        one, two = self.open(url), self.open(url)
        try:
            batch = [NewEvent(UserTurn(turn=1, text="mine"), event_id="mine-1")]
            one.append("session-a", batch, 0)
            two.append("session-a", turns("theirs"), 1)
            again = one.append("session-a", batch, 0)
            assert (again.appended, again.version) == (0, 2)
            # A fresh store instance (a restarted writer) has no cached head either.
            assert two.append("session-a", batch, 0).appended == 0
            stored = one.read_stream("session-a")
            assert [e.event_id for e in stored[:1]] == ["mine-1"]
            assert len(stored) == 2
        finally:
            one.close()
            two.close()

    def test_a_conflict_with_other_ids_is_a_concurrency_error(self, store: EventStore) -> None:
        store.append("session-a", [NewEvent(UserTurn(turn=1, text="a"), event_id="e1")], 0)
        with pytest.raises(ConcurrencyError, match="expected version 0"):
            store.append("session-a", [NewEvent(UserTurn(turn=1, text="a"), event_id="e2")], 0)

    def test_the_same_event_id_in_another_stream_is_another_event(self, store: EventStore) -> None:
        # Event ids are retry keys within a stream; the store keeps no store-wide index of them.
        event = NewEvent(UserTurn(turn=1, text="a"), event_id="e1")
        assert store.append("session-a", [event], 0).appended == 1
        assert store.append("session-b", [event], 0).appended == 1
        stored = store.read_stream("session-a") + store.read_stream("session-b")
        assert [(e.stream_id, e.event_id) for e in stored] == [
            ("session-a", "e1"),
            ("session-b", "e1"),
        ]
        assert store.verify().ok

    def test_without_expected_version_a_retry_finds_its_ids_in_the_stream(
        self, store: EventStore
    ) -> None:
        batch = [NewEvent(UserTurn(turn=i, text=str(i)), event_id=f"n{i}") for i in (1, 2)]
        assert store.append("session-a", batch, None).appended == 2
        store.append("session-a", turns("later"), None)
        again = store.append("session-a", batch, None)
        assert (again.appended, again.version) == (0, 3)
        with pytest.raises(DuplicateEventId, match="n1"):
            store.append("session-a", [NewEvent(UserTurn(turn=1, text="x"), event_id="n1")], None)
        assert len(store.read_stream("session-a")) == 3

    def test_invalid_payload_rejected_before_anything_is_written(self, store: EventStore) -> None:
        good = UserTurn(turn=1, text="fine")
        bad = UserTurn(turn="one", text="wrong type")  # type: ignore[arg-type]
        with pytest.raises(InvalidEvent, match=r"\$\.turn"):
            store.append("session-a", [good, bad], 0, blobs=[b"blob that must not land"])
        assert store.read_stream("session-a") == []
        assert store.streams() == []

    def test_read_all_in_global_order_with_limit_and_types(self, store: EventStore) -> None:
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

    def test_payload_reads_split_by_stream_and_stop_at_a_position(self, store: EventStore) -> None:
        assert store.last_position() == 0
        for n in range(6):
            store.append(f"session-{n}", turns(f"{n}.1", f"{n}.2"), 0)
        until = store.last_position()
        assert until == store.read_all(limit=100)[-1].position
        store.append("session-late", turns("late"), 0)  # after `until`: in no part
        parts = [store.read_payloads(0, 100, until=until, part=(k, 3)) for k in range(3)]
        owners: dict[str, int] = {}
        for k, page in enumerate(parts):
            assert [row[0] for row in page] == sorted(row[0] for row in page)
            for _, stream_id, _, _, _ in page:
                assert owners.setdefault(stream_id, k) == k  # each stream read by one part
        merged = sorted(row[:4] for page in parts for row in page)
        whole = store.read_payloads(0, 100, until=until)
        assert merged == [row[:4] for row in whole] and len(whole) == 12
        assert len({k for k in owners.values()}) > 1
        assert store.read_payloads(until, 100)[0][1] == "session-late"
        assert store.last_position() > until
        first = store.read_payloads(0, 1, types=["user_turn"], until=until, part=(1, 3))
        assert first == parts[1][:1]

    def test_streams_listing_by_prefix_and_type(self, store: EventStore) -> None:
        store.append("session-a", turns("x", "y"), 0)
        store.append("session-b", turns("x"), 0)
        store.append("replay-c", turns("x"), 0)
        store.append("persona-pool-d", turns("x"), 0)
        assert [s.stream_id for s in store.streams("session-")] == ["session-a", "session-b"]
        assert [s.stream_id for s in store.streams(stream_type="persona-pool")] == [
            "persona-pool-d"
        ]
        info = store.streams("session-a")[0]
        assert (info.version, info.stream_type) == (2, "session")
        assert info.created_at <= info.updated_at

    def test_prefix_wildcards_are_literal(self, store: EventStore) -> None:
        store.append("session-a_1", turns("x"), 0)
        store.append("session-ab1", turns("x"), 0)
        assert [s.stream_id for s in store.streams("session-a_")] == ["session-a_1"]
        store.append("session-50%", turns("x"), 0)
        store.append("session-500", turns("x"), 0)
        store.append("session-a\\b", turns("x"), 0)
        store.append("session-a\\\\b", turns("x"), 0)
        assert [s.stream_id for s in store.streams("session-50%")] == ["session-50%"]
        assert [s.stream_id for s in store.streams("session-a\\b")] == ["session-a\\b"]
        assert [s.stream_id for s in store.streams("session-5", stream_type="session")] == [
            "session-50%",
            "session-500",
        ]

    def test_blobs_are_content_addressed_and_deduplicated(self, store: EventStore) -> None:
        data = bytes(range(256)) * 1000
        digest = store.put_blob(data)
        assert store.put_blob(data) == digest
        assert store.get_blob(digest) == data
        assert store.get_blob(store.put_blob(b"")) == b""
        with pytest.raises(BlobNotFound):
            store.get_blob("0" * 64)

    def test_blobs_written_with_the_events_that_cite_them(self, store: EventStore) -> None:
        big = b"\xff\xfe not utf-8 " * 5000
        store.append(
            "session-a",
            [OutputChunk(call_id="c", stream="stdout", seq=0, data=b"x")],
            0,
            blobs=[big],
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
    def test_database_rejects_updates_and_deletes(
        self, store: EventStore, url: str, statement: str
    ) -> None:
        """Append-only is the database's rule, not only the API's: a plain SQL connection of
        its own cannot change or delete what was written."""
        store.append("session-a", turns("a"), 0, blobs=[b"some blob"])
        engines = connect_engines(url)
        try:
            with (
                pytest.raises(sa.exc.DatabaseError, match="append-only"),
                engines.write.begin() as conn,
            ):
                conn.execute(sa.text(statement))
        finally:
            engines.dispose()
        assert len(store.read_stream("session-a")) == 1
        assert store.verify().ok

    def test_verify_passes_on_a_healthy_store(self, store: EventStore) -> None:
        for i in range(5):
            store.append(f"session-{i}", turns("a", "b", "c"), 0)
        report = store.verify()
        assert report.ok and (report.streams, report.events) == (5, 15)

    # ------------------------------------------------------------ lease fencing

    def test_a_finish_with_a_stale_token_changes_nothing(self, store: EventStore) -> None:
        store.queue.enqueue([item("a")])
        lease = store.queue.claim(WORKER, lease_seconds=60)
        assert lease is not None
        stale = Fence(item_id=lease.item_id, token="0" * 32)
        assert store.queue.finish(stale, outcome="done", status="completed") is None
        assert store.queue.renew(stale, lease_seconds=60) is False
        assert store.queue.items()[0].state == "leased"

    def test_fenced_appends_land_while_the_lease_is_held(self, store: EventStore) -> None:
        store.queue.enqueue([item("a")])
        lease = store.queue.claim(WORKER, lease_seconds=60)
        assert lease is not None
        stream = f"session-{lease.session_id}"
        store.append(stream, [started("a")], 0, fence=lease.fence)
        store.append(stream, [UserTurn(turn=1, text="hi")], 1, fence=lease.fence)
        assert [e.version for e in store.read_stream(stream)] == [1, 2]

    def test_an_expired_and_reclaimed_lease_fences_its_old_holder_out(
        self, store: EventStore, clock: Clock
    ) -> None:
        store.queue.enqueue([item("a")])
        lease = store.queue.claim(WORKER, lease_seconds=10)
        assert lease is not None
        stream = f"session-{lease.session_id}"
        store.append(stream, [started("a")], 0, fence=lease.fence)
        clock.now += 11
        expired = store.queue.expire(max_attempts=3)
        assert [(e.item_id, e.state, e.session_id) for e in expired] == [
            (lease.item_id, "queued", lease.session_id)
        ]
        with pytest.raises(LeaseLost, match="lease of work item"):
            store.append(stream, [UserTurn(turn=1, text="late")], 1, fence=lease.fence)
        with pytest.raises(LeaseLost):  # a new stream is fenced too
            store.append("session-other", [started("a")], 0, fence=lease.fence)
        assert [e.version for e in store.read_stream(stream)] == [1]
        assert store.read_stream("session-other") == []
        assert store.queue.renew(lease.fence, lease_seconds=10) is False
        second = store.queue.claim(WORKER, lease_seconds=10)
        assert second is not None and second.attempt == 2 and second.item_id == lease.item_id

    def test_a_renewed_lease_does_not_expire(self, store: EventStore, clock: Clock) -> None:
        store.queue.enqueue([item("a")])
        lease = store.queue.claim(WORKER, lease_seconds=10)
        assert lease is not None
        clock.now += 8
        assert store.queue.renew(lease.fence, lease_seconds=10)
        clock.now += 8
        assert store.queue.expire(max_attempts=3) == []

    # ------------------------------------------------------------ catch-up

    def test_writers_and_a_catch_up_reader(self, url: str, tmp_path: Path) -> None:
        stop, out = tmp_path / "stop", tmp_path / "seen.json"
        reader = spawn("read", url, out, stop)
        writers = [spawn("write", url, f"session-w{i}", 15, 10, f"w{i}") for i in range(4)]
        writers += [spawn("write", url, "session-shared", 15, 10, f"s{i}") for i in range(2)]
        assert [w.wait(120) for w in writers] == [0] * 6
        stop.touch()
        assert reader.wait(60) == 0

        seen = json.loads(out.read_text())
        store = self.open(url)
        try:
            final = store.read_all(0, 100_000)
            assert store.verify().ok
        finally:
            store.close()
        assert len(final) == 6 * 15 * 10
        # Exactly once, and in the store's catch-up order, although it was read while being written.
        assert [row[3] for row in seen] == [e.event_id for e in final]
        for stream in {e.stream_id for e in final}:
            versions = [row[2] for row in seen if row[1] == stream]
            assert versions == list(range(1, len(versions) + 1))
        # The two writers sharing a stream each landed every batch whole (all or nothing).
        shared = [e for e in final if e.stream_id == "session-shared"]
        batches = [[e.event_id for e in shared[i : i + 10]] for i in range(0, len(shared), 10)]
        assert all(len({eid.rsplit("-", 1)[0] for eid in batch}) == 1 for batch in batches)

    # ------------------------------------------------------------ heads

    def test_a_streams_head_is_its_last_event(self, store: EventStore) -> None:
        store.append("session-a", turns("a", "b"), 0)
        store.append("session-a", [SessionEnded(status="completed")], 2)
        events = store.read_stream("session-a")
        (head,) = store.streams("session-a")
        assert (head.version, head.head_hash) == (3, events[-1].hash)
        assert [e.version for e in events] == [1, 2, 3]
        assert events[0].hash != events[1].hash

    # ------------------------------------------------------------ read models

    def test_a_read_model_without_checkpoint_has_none(self, store: EventStore) -> None:
        assert store.projection_checkpoint("stats@v1") is None

    def test_read_model_rows_commit_with_their_checkpoint(self, store: EventStore) -> None:
        table = sa.table("projection_session_text", sa.column("session_id"), sa.column("text"))

        def rows(conn: sa.Connection) -> None:
            conn.execute(sa.insert(table), [{"session_id": "s1", "text": "hello"}])

        store.write_projection("text@v1", 7, rows)
        assert store.projection_checkpoint("text@v1") == 7
        with store.read_projection() as conn:
            assert conn.execute(sa.select(table.c.text)).scalars().all() == ["hello"]

        def broken(conn: sa.Connection) -> None:
            conn.execute(sa.insert(table), [{"session_id": "s2", "text": "lost"}])
            raise RuntimeError("the read model failed half-way")

        with pytest.raises(RuntimeError):
            store.write_projection("text@v1", 9, broken)
        assert store.projection_checkpoint("text@v1") == 7  # neither rows nor checkpoint
        with store.read_projection() as conn:
            assert conn.execute(sa.select(table.c.session_id)).scalars().all() == ["s1"]

    def test_a_rebuild_forgets_older_versions_checkpoints(self, store: EventStore) -> None:
        store.write_projection("stats@v1", 10)
        store.write_projection("stats_x@v1", 4)  # `_` is literal in the prefix
        store.write_projection("audit@v1", 5)
        store.write_projection("stats@v2", 0, replace_prefix="stats@")
        assert store.projection_checkpoint("stats@v1") is None
        assert store.projection_checkpoint("stats@v2") == 0
        assert store.projection_checkpoint("stats_x@v1") == 4
        assert store.projection_checkpoint("audit@v1") == 5
