"""Migrations are the only way the schema is made, and they agree with the code's metadata."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ise_es.errors import SchemaOutOfDate, StoreUnavailable
from ise_es.events import UserTurn
from ise_es.store import migrate
from ise_es.store.engine import connect_engines
from ise_es.store.schema import POSTGRES_ONLY, metadata
from ise_es.store.sql import open_store


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
