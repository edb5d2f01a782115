"""Parity with the reference pipeline's files: the legacy middle shape, tools the agent really
had, the success rule, whitespace, intents by file name, real times, cut-off files and
`import middle`. The fixtures (fixtures/reference/) are written by us from FORMATS.md."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.projections.session import result_reports_error
from ise_es.store.sql import open_store
from tests.projections.conftest import assert_valid, load_validator

REFERENCE = Path(__file__).resolve().parents[2] / "fixtures" / "reference"
SESSIONS = REFERENCE / "sessions"
[SESSION] = sorted(SESSIONS.glob("intent_*.jsonl"))
[LEGACY] = sorted((REFERENCE / "middle-legacy").glob("*.json"))
TOOLS = REFERENCE / "tools.json"
INTENTS = REFERENCE / "intents.jsonl"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def wait_visible(db: str) -> None:
    """Until catch-up readers see every event (on PostgreSQL they take only rows below the
    oldest running transaction of the whole server, and other tests share it)."""
    with open_store(db) as store:
        last = max(store.read_stream(s.stream_id)[-1].position for s in store.streams())
        deadline = time.monotonic() + 60
        while not store.read_all(last - 1, 1):
            assert time.monotonic() < deadline, f"position {last} never became visible"
            time.sleep(0.05)


def import_reference(db: str, *extra: str, path: Path = SESSIONS) -> None:
    code, out, err = run("import", "openclaw", str(path), "--db", db, *extra)
    assert code == 0, out + err
    wait_visible(db)


def export(db: str, out: Path, *extra: str) -> list[dict[str, Any]]:
    code, stdout, stderr = run(
        "project", "sft-jsonl", "-o", str(out), "--format", "middle", "--db", db, *extra
    )
    assert code == 0, stdout + stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def kind(value: Any) -> str:
    return type(value).__name__


def assert_shaped_like(ours: Any, theirs: Any, where: str) -> None:
    """Every key of `theirs` is in `ours` with a value of the same JSON type, recursively for
    objects; list items are compared by role for messages, else item by item type."""
    assert kind(ours) == kind(theirs), (
        f"{where}: {kind(ours)} where the reference has {kind(theirs)}"
    )
    if isinstance(theirs, dict):
        missing = [k for k in theirs if k not in ours]
        assert not missing, f"{where}: keys missing {missing}"
        for key, value in theirs.items():
            assert_shaped_like(ours[key], value, f"{where}.{key}")


def test_legacy_shape_round_trips_the_reference_file(db_url: str, tmp_path: Path) -> None:
    import_reference(db_url, "--tools", str(TOOLS), "--intents", str(INTENTS))
    [ours] = export(db_url, tmp_path / "legacy.jsonl", "--middle-shape", "legacy")
    theirs = json.loads(LEGACY.read_text())
    assert list(ours) == list(theirs)  # every key, in the reference's order, nothing else
    assert_valid(load_validator("middle-legacy"), ours)
    assert_valid(load_validator("middle-legacy"), theirs)
    for key in theirs:
        if key != "messages":
            assert_shaped_like(ours[key], theirs[key], key)
    by_role: dict[str, list[dict[str, Any]]] = {}
    for m in ours["messages"]:
        by_role.setdefault(m["role"], []).append(m)
    for i, m in enumerate(theirs["messages"]):
        same = [o for o in by_role[m["role"]] if set(m) <= set(o)]
        assert same, f"messages[{i}] ({m['role']}): no message of ours has keys {sorted(m)}"
        for o in same:
            assert_shaped_like(o, m, f"messages[{i}]")
    for m in ours["messages"]:
        for call in m.get("tool_calls", []):
            assert isinstance(call["function"]["arguments"], str)
    assert ours["tools"] == theirs["tools"]  # the schemas given with --tools, as the agent had
    assert ours["intent"] == theirs["intent"] and ours["intent_id"] == theirs["intent_id"]
    assert ours["session_id"] == theirs["session_id"]  # the header's UUID, as the file names it
    assert ours["metadata"]["persona"] == theirs["metadata"]["persona"]
    assert ours["total_steps"] == theirs["total_steps"]
    # the reference drops the thinking-only message; ours keeps it, so one more assistant turn
    assert len(ours["messages"]) == len(theirs["messages"]) + 1


def tool_messages(sample: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in sample["messages"] if m["role"] == "tool"]


def test_success_strict_by_default_and_reference_on_request(db_url: str, tmp_path: Path) -> None:
    import_reference(db_url)
    [strict] = export(db_url, tmp_path / "strict.jsonl", "--middle-shape", "legacy")
    [ref] = export(
        db_url, tmp_path / "ref.jsonl", "--middle-shape", "legacy", "--success", "reference"
    )
    theirs = json.loads(LEGACY.read_text())
    # web_search answered {"error": "unsupported_freshness"} and du exited 1: both failed
    assert [m["success"] for m in tool_messages(strict)] == [False, True, False, True, True, True]
    assert [m["success"] for m in tool_messages(ref)] == [
        m["success"] for m in tool_messages(theirs)
    ]
    assert strict["metadata"]["success_rule"] == "strict"


def test_whitespace_raw_by_default_stripped_in_legacy(db_url: str, tmp_path: Path) -> None:
    import_reference(db_url)
    [current] = export(db_url, tmp_path / "current.jsonl")
    [legacy] = export(db_url, tmp_path / "legacy.jsonl", "--middle-shape", "legacy")
    assert tool_messages(current)[1]["content"].startswith("\n\n1. Flour costs")
    assert tool_messages(legacy)[1]["content"].startswith("1. Flour costs")
    assert tool_messages(legacy)[1]["content"] == tool_messages(legacy)[1]["content"].strip()
    reasoning = [m["reasoning_content"] for m in current["messages"] if "reasoning_content" in m]
    assert reasoning[0].endswith("this week.\n\n")
    legacy_reasoning = [
        m["reasoning_content"] for m in legacy["messages"] if "reasoning_content" in m
    ]
    assert legacy_reasoning[0].endswith("this week.")
    # current keeps arguments as objects and its own keys
    assert "intent" not in current and current["source_intent_ids"] == [current["intent_id"]]
    calls = [c for m in current["messages"] for c in m.get("tool_calls", [])]
    assert all(isinstance(c["function"]["arguments"], dict) for c in calls)


def test_tools_are_only_those_the_agent_had(db_url: str, tmp_path: Path) -> None:
    import_reference(db_url)
    [sample] = export(db_url, tmp_path / "m.jsonl")
    names = [t["function"]["name"] for t in sample["tools"]]
    assert names == ["web_search", "exec", "write"]  # used, in order of first use
    search = sample["tools"][0]["function"]["parameters"]
    assert search["properties"] == {
        "query": {"type": "string"},
        "freshness": {"type": "string"},
        "count": {"type": "integer"},
    }
    assert search["required"] == ["query", "count"]  # freshness only in the first call
    source = sample["metadata"]["session"]["provenance"]["tool_schemas_source"]
    assert source.startswith("inferred from the arguments of 6 observed calls")


def test_intents_attach_by_file_name_and_times_are_real(db_url: str) -> None:
    import_reference(db_url, "--intents", str(INTENTS))
    code, out, _ = run("sessions", "list", "--json", "--db", db_url)
    assert code == 0
    [row] = [json.loads(line) for line in out.splitlines()]
    assert row["intent_id"] == "intent_58f206b3"
    assert row["started"] == datetime(2026, 3, 28, 1, 0, 0, tzinfo=UTC).timestamp()
    assert row["duration_s"] == 190.5  # header 01:00:00.000 to the last entry 01:03:10.500
    code, out, _ = run("sessions", "show", row["session_id"], "--json", "--db", db_url)
    started = json.loads(out.splitlines()[0])
    assert started["persona"]["name"] == "Mara Lindqvist"
    assert started["intent_record"]["domains"] == ["web-research", "system-administration"]
    assert started["intent_record"]["complexity"] == "medium"


def test_cut_off_last_line_needs_skip_invalid(sqlite_url: str, tmp_path: Path) -> None:
    data = SESSION.read_bytes()
    cut = tmp_path / SESSION.name
    cut.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 40])  # half of the last line
    code, out, err = run("import", "openclaw", str(cut), "--db", sqlite_url)
    assert code == 1
    assert f"{cut.name}:19: not a JSON object" in err and "--skip-invalid" in err
    code, out, err = run("import", "openclaw", str(cut), "--db", sqlite_url, "--skip-invalid")
    assert code == 0, out + err
    assert f"skipped {cut}:19: not a JSON object" in err
    assert out.splitlines()[-1] == "1 imported, 0 already there, 0 failed, 1 invalid lines skipped"


def test_import_middle_reads_both_shapes(db_url: str, tmp_path: Path) -> None:
    import_reference(db_url, "--intents", str(INTENTS))
    [current] = export(db_url, tmp_path / "current.jsonl")
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("db", "upgrade", "--db", other)[0] == 0
    code, out, err = run(
        "import", "middle", str(tmp_path / "current.jsonl"), str(LEGACY), "--db", other
    )
    assert code == 1, out + err  # same session id from two different files: refused, not merged
    assert "already in the store from another file" in err
    wait_visible(other)
    [again] = export(other, tmp_path / "again.jsonl")
    for key in ("messages", "tools", "total_steps", "enable_thinking", "final_output"):
        assert again[key] == current[key], key
    assert again["metadata"]["persona"] == current["metadata"]["persona"]
    assert again["metadata"]["tool_results"][2]["exit_code"] == 1  # restored from metadata
    legacy_db = f"sqlite:///{tmp_path / 'legacy.db'}"
    assert run("db", "upgrade", "--db", legacy_db)[0] == 0
    code, out, err = run("import", "middle", str(LEGACY.parent), "--db", legacy_db)
    assert code == 0, out + err
    wait_visible(legacy_db)
    [from_legacy] = export(
        legacy_db, tmp_path / "l.jsonl", "--middle-shape", "legacy", "--success", "reference"
    )
    theirs = json.loads(LEGACY.read_text())
    assert from_legacy["messages"] == theirs["messages"]
    assert from_legacy["intent"] == theirs["intent"] and from_legacy["tools"] == theirs["tools"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"error": "unsupported_freshness"}', True),
        ('  {"error": {"code": 403}}', True),
        ('{"error": null, "results": []}', False),
        ('{"error": ""}', False),
        ("error: something", False),
        ('{"error": "x"', False),
    ],
)
def test_json_error_results_are_failures(text: str, expected: bool) -> None:
    assert result_reports_error(text) is expected
