"""Helpers for the viewer tests: sessions recorded for real (the scripted backend runs every
tool in the sandbox) through `ise-es record`, replayed through `ise-es replay`, and the viewer
app over the same store."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.store.engine import Engines, connect_engines
from ise_es.store.sql import SqlEventStore, open_store
from ise_es.viewer.app import create_app

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"


def record(db_url: str, tmp: Path, scenario: str | Path, *args: str) -> str:
    """Record one scenario (a name in tests/viewer/scenarios, a file, or the name of a shipped
    scenario) alone; returns the new session's id."""
    path = Path(scenario) if isinstance(scenario, Path) else SCENARIOS / f"{scenario}.yaml"
    if path.exists():
        directory = tmp / f"scenario-{path.stem}"
        directory.mkdir(exist_ok=True)
        shutil.copy(path, directory / path.name)
        source = str(directory)
    else:
        source = str(scenario)  # a shipped scenario, by name
    with open_store(db_url) as store:
        before = {s.stream_id for s in store.streams(stream_type="session")}
    result = CliRunner().invoke(main, ["record", "--scenario", source, "--db", db_url, *args])
    assert result.exit_code == 0, result.output
    with open_store(db_url) as store:
        new = [
            s.stream_id for s in store.streams(stream_type="session") if s.stream_id not in before
        ]
    assert len(new) == 1, new
    return new[0].removeprefix("session-")


def replay(db_url: str, session_id: str) -> str:
    """`ise-es replay SESSION`; returns the replay's id."""
    with open_store(db_url) as store:
        before = {s.stream_id for s in store.streams(stream_type="replay")}
    result = CliRunner().invoke(main, ["replay", session_id, "--db", db_url])
    assert result.exit_code in (0, 1), result.output
    with open_store(db_url) as store:
        new = [
            s.stream_id for s in store.streams(stream_type="replay") if s.stream_id not in before
        ]
    assert len(new) == 1, (new, result.output)
    return new[0].removeprefix("replay-")


@dataclass
class Corpus:
    """A store holding the viewer's scenarios, recorded once per database."""

    url: str
    xss: str
    """viewer-xss: markup and ANSI in stdout, a failing command, a file written then edited."""
    drift: str
    """viewer-drift under --max-turns 1: turn_cap, a role-drift finding."""
    shell: str
    """viewer-shell: a command not found, a non-zero exit, apply_patch."""
    replay_id: str
    """A replay of `xss`."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Corpus]:
    tmp = tmp_path_factory.mktemp("viewer-corpus")
    if request.param == "sqlite":
        path = tmp / "store.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        dbs = request.getfixturevalue("pg_databases")
        name = dbs.create(template=dbs.template)
        url = dbs.url(name)
    xss = record(url, tmp, "viewer-xss")
    drift = record(url, tmp, "viewer-drift", "--max-turns", "1")
    shell = record(url, tmp, "viewer-shell")
    replay_id = replay(url, xss)
    yield Corpus(url=url, xss=xss, drift=drift, shell=shell, replay_id=replay_id)
    if request.param == "postgres":
        request.getfixturevalue("pg_databases").drop(name)


@dataclass
class Viewer:
    store: SqlEventStore
    engines: Engines
    app: Any


def open_viewer(url: str, *, interval: float | None = None) -> Viewer:
    engines = connect_engines(url)  # before the store: see ise_es/commands/serve.py
    store = open_store(url)
    app = create_app(store, engines, index_interval=interval)
    return Viewer(store=store, engines=engines, app=app)


def close_viewer(viewer: Viewer) -> None:
    viewer.engines.dispose()
    viewer.store.close()


def settle(viewer: Viewer, timeout: float = 60) -> None:
    """Catch the session index up until it has read every event in the store. On PostgreSQL
    catch-up reads stop at the oldest transaction running anywhere on the server, and other
    test suites share that server, so one refresh may not see the newest events yet."""
    store = viewer.store
    last = 0
    for info in store.streams():
        if info.stream_type in ("session", "replay"):
            head = store.read_stream(info.stream_id, info.version, to_version=info.version)
            last = max(last, head[0].position)
    indexer = viewer.app.state.indexer
    deadline = time.monotonic() + timeout
    while True:
        indexer.refresh()
        assert indexer.error is None, indexer.error
        if indexer.position >= last:
            return
        assert time.monotonic() < deadline, f"index at {indexer.position}, log at {last}"
        time.sleep(0.1)
