"""`sessions list` and `sessions show` as people use them: ids typed short, tables read in an
80-column terminal or piped into other tools, sessions looked at while they are recorded."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from cli import main
from ise_es.store.sql import SqlEventStore
from tests.projections.builders import SessionBuilder, append_visible, simple_session

ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Two ids sharing a 6-character prefix, one apart from both.
FIRST, SECOND, OTHER = "3f2a9c1e0b7d4e21", "3f2a9c77aa01bb02", "77b0e5d1c2a3f400"
LONG_INTENT = "imported-intent-with-a-rather-long-identifier-0001"


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, ANSI.sub("", result.stdout), result.stderr


@pytest.fixture
def three_sessions(store: SqlEventStore) -> SqlEventStore:
    for sid in (FIRST, SECOND):
        simple_session(sid).append_to(store)
    b = SessionBuilder(OTHER, intent_id=LONG_INTENT)
    b.user("Count the lines of every log.").agent(
        "", calls=[("exec", {"command": "wc -l *.log"})], results=[("3 a.log\n", 0)]
    )
    b.end("turn_cap").append_to(store)
    return store


def test_show_takes_a_unique_prefix(three_sessions: SqlEventStore, db_url: str) -> None:
    code, out, _ = run("sessions", "show", FIRST[:7], "--db", db_url)
    assert code == 0
    assert f"session {FIRST}" in out and "ls /tmp/work0" in out
    code, out, _ = run("sessions", "show", f"session-{OTHER[:4]}", "--json", "--db", db_url)
    assert code == 0
    assert json.loads(out.splitlines()[0])["session_id"] == OTHER


def test_ambiguous_prefix_is_one_line_listing_the_candidates(
    three_sessions: SqlEventStore, db_url: str
) -> None:
    for command in (["sessions", "show"], ["replay"]):
        code, out, err = run(*command, FIRST[:6], "--db", db_url)
        assert code == 2, (command, out, err)
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.startswith("Error: session id '3f2a9c' is ambiguous")
        assert FIRST in err and SECOND in err and OTHER not in err


def test_unknown_and_too_short_ids_exit_2(three_sessions: SqlEventStore, db_url: str) -> None:
    code, _, err = run("sessions", "show", "deadbeefdeadbeef", "--db", db_url)
    assert code == 2
    assert err == "Error: no session 'deadbeefdeadbeef': `ise-es sessions list` shows the ids\n"
    code, _, err = run("sessions", "show", "3f2", "--db", db_url)
    assert code == 2 and "at least 4" in err and err.count("\n") == 1


def test_an_exact_id_wins_over_a_longer_id_it_prefixes(store: SqlEventStore, db_url: str) -> None:
    simple_session("abcd1234").append_to(store)
    simple_session("abcd12345678").append_to(store)
    code, out, _ = run("sessions", "show", "abcd1234", "--json", "--db", db_url)
    assert code == 0 and json.loads(out.splitlines()[0])["session_id"] == "abcd1234"


def lines_holding(out: str, text: str) -> list[str]:
    return [line for line in out.splitlines() if text in line]


@pytest.mark.parametrize(
    "env",
    [
        {"COLUMNS": "80", "TTY_COMPATIBLE": "1"},
        {"COLUMNS": "40", "TTY_COMPATIBLE": "1"},
        {"COLUMNS": "80"},
        {"COLUMNS": "40"},
    ],
    ids=["terminal-80", "terminal-40", "piped-80", "piped-40"],
)
def test_table_never_breaks_a_session_id(
    three_sessions: SqlEventStore, db_url: str, env: dict[str, str]
) -> None:
    code, out, _ = run("sessions", "list", "--db", db_url, env=env)
    assert code == 0
    for sid in (FIRST, SECOND, OTHER):
        assert len(lines_holding(out, sid)) == 1, out
    # Whole ids only: no line holds the start of an id without the rest of it.
    assert len(lines_holding(out, FIRST[:6])) == 2, out
    rows = out.strip("\n").splitlines()
    assert len(rows) == 4, "a header and one line per session, nothing wrapped"


def test_table_fits_80_columns_by_shortening_only_the_intent(
    three_sessions: SqlEventStore, db_url: str
) -> None:
    _, out, _ = run(
        "sessions", "list", "--db", db_url, env={"COLUMNS": "80", "TTY_COMPATIBLE": "1"}
    )
    assert max(cell_len(line) for line in out.splitlines()) <= 80, out
    (row,) = lines_holding(out, OTHER)
    assert "turn_cap" in row and "…" in row and LONG_INTENT not in row


def test_piped_table_keeps_every_id_whole(three_sessions: SqlEventStore, db_url: str) -> None:
    _, out, _ = run("sessions", "list", "--db", db_url, env={"COLUMNS": "80"})
    (row,) = lines_holding(out, OTHER)
    assert row.split()[:4] == [OTHER, "turn_cap", "1", "1"] and LONG_INTENT in row


def test_running_session_shows_live_counts(store: SqlEventStore, db_url: str) -> None:
    simple_session(FIRST).append_to(store)
    live = SessionBuilder(OTHER)
    live.user("Tidy the logs.").agent(
        "", calls=[("exec", {"command": "ls"}), ("exec", {"command": "du -sh ."})]
    )
    live.user("Now delete the old ones.")
    append_visible(store, live.stream_id, live.events, 0)

    code, out, _ = run("sessions", "list", "--json", "--db", db_url)
    assert code == 0
    rows = {r["session_id"]: r for r in map(json.loads, out.splitlines())}
    assert (rows[OTHER]["status"], rows[OTHER]["user_turns"], rows[OTHER]["tool_calls"]) == (
        "running",
        2,
        2,
    )
    assert rows[OTHER]["duration_s"] is None
    assert (rows[FIRST]["status"], rows[FIRST]["user_turns"], rows[FIRST]["tool_calls"]) == (
        "completed",
        2,
        2,
    )
    _, out, _ = run("sessions", "list", "--status", "running", "--db", db_url)
    (row,) = lines_holding(out, OTHER)
    assert row.split()[1:4] == ["running", "2", "2"] and FIRST not in out

    code, out, _ = run("sessions", "show", OTHER[:5], "--db", db_url)
    assert code == 0
    assert out.rstrip().splitlines()[-1].strip("─ ") == "running: 2 user turns, 2 tool calls so far"

    # A call counts from the moment it starts; the counts move as the stream grows.
    live.agent("", calls=[("exec", {"command": "rm old.log"})])
    have = len(store.read_stream(live.stream_id))
    append_visible(store, live.stream_id, live.events[have:], have)
    _, out, _ = run("sessions", "list", "--json", "--db", db_url)
    rows = {r["session_id"]: r for r in map(json.loads, out.splitlines())}
    assert rows[OTHER]["tool_calls"] == 3


def test_wide_characters_and_control_characters_keep_rows_on_one_line() -> None:
    from ise_es.simulate.browse import SessionRow, format_session_table

    row = SessionRow(
        session_id=FIRST,
        intent_id="导入的意图-带有很长的名字\nsecond line",
        intent="",
        status="completed",
        user_turns=1,
        tool_calls=0,
        started=1_700_000_000.0,
        duration_s=1.0,
    )
    _, line = format_session_table([row], width=80)
    assert cell_len(line) <= 80 and line.endswith("…") and FIRST in line
    (whole,) = format_session_table([row])[1:]
    assert whole.endswith("导入的意图-带有很长的名字?second line")
