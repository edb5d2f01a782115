"""Migrations are the only way the schema is made, and they agree with the code's metadata."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ise_es.errors import SchemaOutOfDate, StoreUnavailable
from ise_es.events import Event, UserTurn
from ise_es.store import migrate
from ise_es.store.base import NewEvent
from ise_es.store.engine import connect_engines
from ise_es.store.schema import POSTGRES_ONLY, metadata
from ise_es.store.sql import SqlEventStore, open_store
from tests.store.oldschema import write_streams


def drift(url: str) -> list[object]:
    engines = connect_engines(url)
    try:
        with engines.read.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engines.dispose()

    def ours(diff: object) -> bool:
        # Indexes that exist on PostgreSQL only are created by the migration on purpose.
        item = diff[1] if isinstance(diff, tuple) and len(diff) > 1 else None
        return getattr(item, "name", None) not in POSTGRES_ONLY

    return [d for d in diffs if ours(d)]


def table_names(url: str) -> set[str]:
    engines = connect_engines(url)
    try:
        return set(sa.inspect(engines.read).get_table_names())
    finally:
        engines.dispose()


def test_upgrade_downgrade_upgrade_without_drift(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url)
    assert migrate.current(empty_db_url) == migrate.head()
    assert drift(empty_db_url) == []
    migrate.downgrade(empty_db_url, "base")
    assert table_names(empty_db_url) <= {"alembic_version"}
    migrate.upgrade(empty_db_url)
    assert drift(empty_db_url) == []
    with open_store(empty_db_url) as store:
        store.append("session-a", [UserTurn(turn=1, text="after a round trip")], 0)
        assert store.verify().ok


def test_opening_an_unmigrated_store_says_what_to_run(empty_db_url: str) -> None:
    with pytest.raises(SchemaOutOfDate, match=r"expected .*: run `ise-es db upgrade`"):
        open_store(empty_db_url)


def test_opening_an_outdated_store_names_both_revisions(db_url: str) -> None:
    engines = connect_engines(db_url)
    with engines.write.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    engines.dispose()
    with pytest.raises(
        SchemaOutOfDate, match=f"database at revision 0000, expected {migrate.head()}"
    ):
        open_store(db_url)


def test_missing_sqlite_file_is_not_created(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "absent.db"
    with pytest.raises(StoreUnavailable, match="ise-es db upgrade"):
        open_store(f"sqlite:///{path}")
    assert not path.exists()


def everything(store: SqlEventStore) -> list[tuple[int, str, int, str]]:
    """(position, stream, version, hash) of every event, stream by stream (read_all could be
    held back on PostgreSQL by other tests' open transactions: the catch-up horizon)."""
    return [
        (e.position, e.stream_id, e.version, e.hash)
        for info in store.streams()
        for e in store.read_stream(info.stream_id)
    ]


def test_a_store_written_before_0005_keeps_working_after_it(empty_db_url: str) -> None:
    """0005 rebuilds SQLite's events and streams tables (and adds columns on PostgreSQL):
    every row, position, head and trigger must survive, and the upgraded store must append,
    recognise retries and verify; downgrading brings 0004's schema back with the rows."""
    url = empty_db_url
    migrate.upgrade(url, "0004")
    texts = {"session-0": ["s0", "b"], "session-1": ["s1", "b"], "session-2": ["s2", "b"]}
    plan: dict[str, list[Event | NewEvent]] = {
        stream_id: [UserTurn(turn=i + 1, text=t) for i, t in enumerate(ts)]
        for stream_id, ts in texts.items()
    }
    plan["session-0"].append(NewEvent(UserTurn(turn=3, text="kept"), event_id="r1"))
    write_streams(url, plan)
    migrate.upgrade(url)
    assert drift(url) == []
    with open_store(url) as store:
        before = everything(store)
        assert len(before) == 7
        assert store.verify().ok
        assert [s.version for s in store.streams()] == [3, 2, 2]
        retry = store.append(
            "session-0", [NewEvent(UserTurn(turn=3, text="kept"), event_id="r1")], 2
        )
        assert retry.appended == 0
        assert store.append("session-0", [UserTurn(turn=4, text="new")], 3).version == 4
        assert store.append("session-new", [UserTurn(turn=1, text="n")], 0).version == 1
        assert store.verify().ok
        after = everything(store)
        assert len(after) == len(before) + 2 and set(before) <= set(after)
        assert max(p for p, *_ in after) > max(p for p, *_ in before)
    engines = connect_engines(url)
    try:
        for statement in ("UPDATE events SET payload = 'x'", "DELETE FROM events"):
            with (
                pytest.raises(sa.exc.DBAPIError, match="append-only"),
                engines.write.begin() as conn,
            ):
                conn.execute(sa.text(statement))
    finally:
        engines.dispose()
    migrate.downgrade(url, "0004")
    engines = connect_engines(url)
    try:
        with engines.read.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT position, stream_id, version, hash FROM events ORDER BY position")
            ).all()
    finally:
        engines.dispose()
    assert sorted(map(tuple, rows)) == sorted(after)
