"""Fixtures for the intents tests: a small persona pool and a store holding it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ise_es.intents.personas import PersonaPool, build_pool, make_pool, offline_personas


@pytest.fixture(scope="session")
def small_pool() -> PersonaPool:
    return make_pool(build_pool(offline_personas(40, seed=11)).personas)


@pytest.fixture
def other_sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A second migrated SQLite store, separate from `store`/`sqlite_url` (same tmp_path)."""
    path = tmp_path / "other" / "store.db"
    path.parent.mkdir()
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


from tests.support.fixtures import openai_server  # noqa: E402

__all__ = ["openai_server"]
