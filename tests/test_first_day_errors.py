"""Errors a new user hits on the first day: one line, the right exit code, through the CLI.

A `--db` file that is not a database, a `--status` nobody records, a split with a share of 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args, get_type_hints

import click
import pytest
from click.testing import CliRunner, Result

from cli import main
from ise_es.events import SessionEnded
from ise_es.store.sql import open_store
from tests.projections.builders import SessionBuilder, simple_session


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def notadb(tmp_path: Path) -> Path:
    path = tmp_path / "notadb.txt"
    path.write_text("these are my notes, not a database\n" * 20)
    return path


@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["db", "current"], ["sessions", "list"], ["verify"]]
)
def test_a_text_file_as_db_is_one_line(notadb: Path, command: list[str]) -> None:
    before = notadb.read_bytes()
    result = invoke(*command, "--db", f"sqlite:///{notadb}")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: cannot open database sqlite:///{notadb}: {notadb} is not an ise-es SQLite store "
        "(not an SQLite database file): check the --db path, or give a new file name for "
        "`ise-es db upgrade` to create\n"
    )
    assert notadb.read_bytes() == before
    assert sorted(p.name for p in notadb.parent.iterdir()) == ["notadb.txt"]  # no -wal, -shm


@pytest.mark.parametrize("command", [["db", "upgrade"], ["sessions", "list"], ["verify"]])
def test_a_damaged_file_with_an_sqlite_header_is_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)  # the header, then garbage
    result = invoke(*command, "--db", f"sqlite:///{damaged}")
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: cannot open database sqlite:///{damaged}: {damaged} is not an ise-es SQLite "
        "store (not an SQLite database file): check the --db path, or give a new file name for "
        "`ise-es db upgrade` to create\n"
    )


def test_checking_a_store_file_keeps_the_locks_of_connections_already_open(
    tmp_path: Path,
) -> None:
    """Closing any descriptor of a file drops this process's POSIX locks on it, SQLite's too:
    the check must not open the file itself, or another process that closes the store
    afterwards checkpoints and deletes the WAL under this one's connections."""
    import subprocess
    import sys

    from ise_es.events import UserTurn
    from ise_es.store import migrate
    from ise_es.store.engine import connect_engines
    from ise_es.store.sql import open_store

    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate.upgrade(url)
    with open_store(url) as first:
        first.append("session-a", [UserTurn(turn=1, text="x")], 0)
        connect_engines(url).dispose()  # checks the file again while `first` holds its locks
        other = f"from ise_es.store.sql import open_store; open_store({url!r}).close()"
        subprocess.run([sys.executable, "-c", other], check=True, timeout=60)
        assert (tmp_path / "store.db-wal").exists(), "the WAL was deleted under an open store"
        first.append("session-a", [UserTurn(turn=2, text="y")], 1)
        assert [e.version for e in first.read_stream("session-a")] == [1, 2]


def test_an_empty_file_is_still_a_new_store(tmp_path: Path) -> None:
    empty = tmp_path / "new.db"
    empty.touch()  # SQLite treats an empty file as an empty database
    result = invoke("db", "upgrade", "--db", f"sqlite:///{empty}")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("database at revision ")


def _statuses(command: click.Command) -> list[str]:
    (option,) = [p for p in command.params if p.name == "status"]
    assert isinstance(option.type, click.Choice)
    return [str(c) for c in option.type.choices]


def test_sessions_list_status_is_the_event_models_plus_running() -> None:
    sessions = main.commands["sessions"]
    assert isinstance(sessions, click.Group)
    ended = list(get_args(get_type_hints(SessionEnded)["status"]))
    assert _statuses(sessions.commands["list"]) == [*ended, "running"]


def test_sessions_list_refuses_an_unknown_status(sqlite_url: str) -> None:
    result = invoke("sessions", "list", "--status", "bogus", "--db", sqlite_url)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "Error: Invalid value for '--status': 'bogus' is not one of 'completed', 'turn_cap', "
        "'stalled', 'error', 'interrupted', 'running'."
    )
    assert result.stdout == ""


def test_sessions_list_filters_by_a_valid_status(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        simple_session("done").append_to(store)
        simple_session("capped", status="turn_cap").append_to(store)
        open_one = SessionBuilder("open")
        open_one.user("Still going.")
        open_one.append_to(store)
    for status, expected in [("turn_cap", "capped"), ("running", "open")]:
        result = invoke("sessions", "list", "--status", status, "--json", "--db", sqlite_url)
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in result.stdout.splitlines()]
        assert [(r["session_id"], r["status"]) for r in rows] == [(expected, status)]


def test_a_split_share_of_zero_writes_an_empty_file(sqlite_url: str, tmp_path: Path) -> None:
    with open_store(sqlite_url) as store:
        for k in range(6):
            simple_session(f"s{k}").append_to(store)
    out = tmp_path / "sft.jsonl"
    result = invoke(
        "project", "sft-jsonl", "-o", str(out), "--split", "train=0.8,val=0.2,test=0",
        "--db", sqlite_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    test_file = tmp_path / "sft.test.jsonl"
    assert test_file.read_bytes() == b""
    assert f"{test_file} (test): 0 samples, 0 bytes" in result.stdout.splitlines()
    train = (tmp_path / "sft.train.jsonl").read_text().splitlines()
    val = (tmp_path / "sft.val.jsonl").read_text().splitlines()
    assert len(train) + len(val) == 6
