"""Scenarios that would record a session nobody meant are refused before anything runs.

Each refusal goes through the real `ise-es record`: exit 2, one `Error:` line naming the file and
the step (or the template), and nothing in the store, not even a SessionStarted (a sandbox that
had started would have left one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.events import SessionEnded, ToolCallFinished
from ise_es.simulate.scenario import load_scenarios, shipped_scenarios_dir
from ise_es.store.sql import open_store


def scenario(tmp_path: Path, body: str, name: str = "s") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(body)
    return path


def one_call(call: str, *, template: str = "empty", flag: str = "") -> str:
    return (
        f"intent: check\ntemplate: {template}\nturns:\n  - user: go\n    agent:\n"
        f"      - text: ''\n{flag}        tool_calls:\n          - {call}\n"
        "      - text: done\n"
    )


def refused(path: Path, db: str, *extra: str) -> str:
    result = CliRunner().invoke(main, ["record", "--scenario", str(path), "--db", db, *extra])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    with open_store(db) as store:
        assert store.streams() == [], "nothing may be recorded"
    return lines[0]


def test_unknown_tool_is_refused_naming_file_and_step(tmp_path: Path, sqlite_url: str) -> None:
    path = scenario(tmp_path, one_call("frobnicate: {level: 3}"))
    line = refused(path, sqlite_url)
    assert line.startswith(f"Error: {path}: turn 1, agent step 1, tool call 1: ")
    assert "unknown tool 'frobnicate'" in line and "expect_error: true" in line


def test_arguments_the_schema_refuses_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    path = scenario(tmp_path, one_call("exec: {cmd: ls}"))
    line = refused(path, sqlite_url)
    assert line.startswith(f"Error: {path}: turn 1, agent step 1, tool call 1: exec refuses")
    assert "'command'" in line


def test_malformed_json_arguments_are_refused(tmp_path: Path, sqlite_url: str) -> None:
    path = scenario(tmp_path, one_call("{name: exec, raw_arguments: '{\"command\": '}"))
    assert "not valid JSON" in refused(path, sqlite_url)


def test_a_later_step_is_named(tmp_path: Path, sqlite_url: str) -> None:
    body = (
        "intent: check\nturns:\n  - user: go\n    agent:\n      - text: ok\n"
        "  - user: more\n    agent:\n      - tool_calls:\n          - exec: {command: ls}\n"
        "          - read: {}\n      - text: done\n"
    )
    line = refused(scenario(tmp_path, body), sqlite_url)
    assert ": turn 2, agent step 1, tool call 2: read refuses" in line and "'path'" in line


def test_missing_template_is_refused_naming_file_and_template(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = scenario(tmp_path, one_call("exec: {command: ls}", template="mytpl"))
    line = refused(path, sqlite_url)
    assert line.startswith(f"Error: {path}: unknown template 'mytpl'")
    assert str(tmp_path / "fixtures" / "templates") in line, "names where it looked"


def test_missing_template_given_with_the_flag_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    path = scenario(tmp_path, one_call("exec: {command: ls}"))
    line = refused(path, sqlite_url, "--template", "nosuch")
    assert "unknown template 'nosuch'" in line


def test_one_bad_file_in_a_directory_stops_the_whole_batch(tmp_path: Path, sqlite_url: str) -> None:
    scenario(tmp_path, one_call("exec: {command: ls}"), name="a-good")
    bad = scenario(tmp_path, one_call("frobnicate: {}"), name="b-bad")
    line = CliRunner().invoke(main, ["record", "--scenario", str(tmp_path), "--db", sqlite_url])
    assert line.exit_code == 2 and str(bad) in line.output
    with open_store(sqlite_url) as store:
        assert store.streams() == []


def test_expect_error_plays_the_bad_calls_and_the_agent_sees_the_errors(
    tmp_path: Path, sqlite_url: str
) -> None:
    flag = "        expect_error: true\n"
    body = one_call("frobnicate: {}", flag=flag).replace(
        "          - frobnicate: {}\n", "          - frobnicate: {}\n          - exec: {cmd: ls}\n"
    )
    path = scenario(tmp_path, body)
    result = CliRunner().invoke(main, ["record", "--scenario", str(path), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    with open_store(sqlite_url) as store:
        [stream] = store.streams("session-")
        events = [e.data for e in store.read_stream(stream.stream_id)]
    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert [(f.tool, f.is_error) for f in finished] == [("frobnicate", True), ("exec", True)]
    assert "Unknown tool 'frobnicate'" in finished[0].result_text
    assert "Invalid arguments for exec" in finished[1].result_text
    assert isinstance(events[-1], SessionEnded) and events[-1].status == "completed"


def test_every_shipped_scenario_passes_the_checks() -> None:
    assert len(load_scenarios(shipped_scenarios_dir())) == 6


def test_shipped_scenarios_by_name_and_a_missing_one_lists_them(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # names, not paths: found in the package from anywhere
    [(path, found)] = load_scenarios(Path("03-web-research"))
    assert path == shipped_scenarios_dir() / "03-web-research.yaml" and found.name == path.stem
    assert len(load_scenarios(Path("shipped"))) == 6
    line = refused(Path("nosuch"), sqlite_url)
    assert line.startswith("Error: nosuch: no such scenario file or directory")
    assert "shipped for all" in line and "01-fix-failing-test" in line
