"""Concurrency with real processes: writers, a catch-up reader, a slow writer, a crash."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ise_es.events import UserTurn
from ise_es.store.engine import connect_engines
from ise_es.store.sql import SqlEventStore, open_store

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.store.procs", *map(str, args)], cwd=ROOT)


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.mark.postgres
def test_reader_waits_for_a_slow_writer_instead_of_skipping_it(pg_url: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    slow = spawn("hold", pg_url, "session-slow", 3, ready)
    wait_for(ready)
    store = open_store(pg_url)
    try:
        store.append("session-fast", [UserTurn(turn=1, text="fast writer")], 0)
        # The fast event is committed, at a higher position than the slow writer's row ...
        engines = connect_engines(pg_url)
        try:
            with engines.read.connect() as conn:
                rows = conn.execute(sa.text("SELECT stream_id, position FROM events")).all()
        finally:
            engines.dispose()
        positions = dict(rows)
        assert positions == {"session-fast": positions["session-fast"]}
        # ... but the reader does not hand it out while a lower position may still commit.
        assert store.read_all() == []
        assert store.oldest_open_transaction_age() is not None
        assert slow.wait(30) == 0
        got = [(e.stream_id, e.position) for e in store.read_all()]
        assert [s for s, _ in got] == ["session-slow", "session-fast"]
        assert got[0][1] < got[1][1], "the slow writer's row must have the lower position"
    finally:
        store.close()


def test_kill_9_mid_append_leaves_the_stream_as_before(
    store: SqlEventStore, db_url: str, tmp_path: Path
) -> None:
    store.append("session-a", [UserTurn(turn=1, text="before")], 0)
    ready = tmp_path / "ready"
    proc = spawn("crash", db_url, "session-a", "1", ready)
    assert proc.wait(60) == -9
    assert ready.exists(), "the child must have died inside the append, not before it"
    fresh = open_store(db_url)
    try:
        assert [e.data.text for e in fresh.read_stream("session-a")] == ["before"]  # type: ignore[union-attr]
        assert fresh.streams("session-a")[0].version == 1
        assert fresh.verify().ok
        assert fresh.append("session-a", [UserTurn(turn=2, text="after")], 1).version == 2
    finally:
        fresh.close()
