"""Fixtures shared by every test: stores on SQLite and PostgreSQL.

PostgreSQL is not optional: the test command starts it, and a test that needs it fails when it
is unreachable instead of being skipped. Each test gets a throwaway database cloned from a
migrated template database (CREATE DATABASE ... TEMPLATE), dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ise_es.store import migrate
from ise_es.store.sql import SqlEventStore, open_store

PG_SERVER = os.environ.get("ISE_ES_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432")
BACKENDS = ["sqlite", "postgres"]


def _admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL is not reachable at {PG_SERVER} ({e}); run the README's test command, "
            "which starts it (pg_ctlcluster 15 main start)",
            pytrace=False,
        )


class PgDatabases:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self) -> None:
        self.prefix = f"ise_es_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.template = f"{self.prefix}_tmpl"
        self._made: list[str] = []

    def url(self, name: str) -> str:
        return f"{PG_SERVER}/{name}"

    def create(self, template: str | None = None) -> str:
        name = f"{self.prefix}_{len(self._made)}"
        with _admin() as conn:
            conn.execute(
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
            )
        self._made.append(name)
        return name

    def drop(self, name: str) -> None:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        with _admin() as conn:
            for name in [*self._made, self.template]:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    dbs = PgDatabases()
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{dbs.template}"')
    migrate.upgrade(dbs.url(dbs.template))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "store.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def _fresh_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> Iterator[str]:
    if backend == "sqlite":
        path = tmp_path / "store.db"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        else:
            path.touch()
        yield f"sqlite:///{path}"
        return
    dbs: PgDatabases = request.getfixturevalue("pg_databases")
    name = dbs.create(template=dbs.template if migrated else None)
    yield dbs.url(name)
    dbs.drop(name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty store URL on each database."""
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    yield from _fresh_url(request.param, request, tmp_path, migrated=True)


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema) on each backend, for migration tests."""
    yield from _fresh_url(request.param, request, tmp_path, migrated=False)


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated SQLite store URL, for tests that need a store but test no database."""
    yield from _fresh_url("sqlite", request, tmp_path, migrated=True)


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated PostgreSQL store URL."""
    yield from _fresh_url("postgres", request, tmp_path, migrated=True)


def _opened(url: str) -> Iterator[SqlEventStore]:
    s = open_store(url)
    yield s
    s.close()


@pytest.fixture
def store(db_url: str) -> Iterator[SqlEventStore]:
    """A store on each database (on `db_url`: ask for both to run the CLI on it too)."""
    yield from _opened(db_url)


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlEventStore]:
    """A store on SQLite (on `sqlite_url`), for tests that need one but test no database."""
    yield from _opened(sqlite_url)


@pytest.fixture
def blobs(sqlite_store: SqlEventStore) -> SqlEventStore:
    """The real event store (SQLite) as the blob sink of sandboxes and tools."""
    return sqlite_store


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A Docker engine (started if none runs) with the sandbox image (built if missing)."""
    from ise_es.sandbox.dockerimage import build_base_image, ensure_dockerd

    client = ensure_dockerd()
    build_base_image(client)
    return client
