"""`ise-es project atif` and `ise-es import atif` over sessions recorded from the shipped
scenarios: every file validates against our ATIF v1.4 schema, import of our own export exported
again is byte-identical (both databases, both directions), imported calls are marked as not
executed by ise-es, and a foreign file keeps what ise-es has no event field for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ise_es.events import SessionStarted, ToolCallFinished
from ise_es.projections.atif import NOT_EXECUTED
from ise_es.store.sql import open_store
from tests.projections.conftest import SCHEMAS, assert_valid
from tests.projections.publishing import record_scenarios, run, wait_visible


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads((SCHEMAS / "atif-v1.4.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def trajectories(folder: Path) -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))
        if p.name != "manifest.json"
    }  # fmt: skip


def export(db: str, folder: Path) -> dict[str, dict[str, Any]]:
    code, out, err = run("project", "atif", "-o", str(folder), "--status", "any", "--db", db)
    assert code == 0, out + err
    return trajectories(folder)


@pytest.mark.postgres
@pytest.mark.parametrize("direction", ["sqlite->postgres", "postgres->sqlite"])
def test_import_of_our_export_exports_identically(
    sqlite_url: str,
    pg_url: str,
    tmp_path: Path,
    validator: Draft202012Validator,
    direction: str,
) -> None:
    source, target = (
        (sqlite_url, pg_url) if direction.startswith("sqlite") else (pg_url, sqlite_url)
    )
    record_scenarios(source)
    first = export(source, tmp_path / "a")
    assert len(first) == 6
    for doc in first.values():
        assert_valid(validator, doc)
        assert doc["schema_version"] == "ATIF-v1.4"
        assert doc["agent"]["name"] == "ise-es"
        assert [s["step_id"] for s in doc["steps"]] == list(range(1, len(doc["steps"]) + 1))
    steps = [s for doc in first.values() for s in doc["steps"]]
    assert {s["source"] for s in steps} == {"system", "user", "agent"}
    calls = [c for s in steps for c in s.get("tool_calls", [])]
    results = [r for s in steps for r in s.get("observation", {}).get("results", [])]
    assert len(calls) == len(results) == 27
    assert sum("reasoning_content" in s for s in steps) >= 1

    code, out, err = run("import", "atif", str(tmp_path / "a"), "--db", target)
    assert code == 0, out + err
    assert out.splitlines()[-1] == "6 imported, 0 already there, 0 failed"
    code, out, _ = run("import", "atif", str(tmp_path / "a"), "--db", target)
    assert out.splitlines()[-1] == "0 imported, 6 already there, 0 failed"
    wait_visible(target)
    export(target, tmp_path / "b")
    for name in first:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()

    # The trainer files of the imported sessions are those of the recorded ones.
    for db, out_file in ((source, "a.jsonl"), (target, "b.jsonl")):
        assert run("project", "sft-jsonl", "-o", str(tmp_path / out_file), "--db", db)[0] == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()

    with open_store(target) as store:
        for stream in store.streams(stream_type="session"):
            events = [e.data for e in store.read_stream(stream.stream_id)]
            started = events[0]
            assert isinstance(started, SessionStarted)
            assert started.sandbox_backend == "atif"
            assert started.provenance["imported"] is True
            assert started.provenance[NOT_EXECUTED] is False
            finished = [e for e in events if isinstance(e, ToolCallFinished)]
            assert finished and all(f.details[NOT_EXECUTED] is False for f in finished)


FOREIGN: dict[str, Any] = {
    "schema_version": "ATIF-v1.4",
    "session_id": "7D3C-run/42",
    "agent": {"name": "harbor-agent", "version": "1.0.0", "model_name": "m-large"},
    "notes": "written by another tool",
    "final_metrics": {"total_prompt_tokens": 1100, "total_cost_usd": 0.0009, "total_steps": 3},
    "extra": {"benchmark": "demo"},
    "steps": [
        {"step_id": 1, "timestamp": "2025-10-11T10:30:00Z", "source": "user",
         "message": "What is in notes.txt?"},
        {
            "step_id": 2, "timestamp": "2025-10-11T10:30:02Z", "source": "agent",
            "reasoning_effort": "medium", "message": "Reading it.",
            "reasoning_content": "One read is enough.",
            "tool_calls": [
                {"tool_call_id": "c1", "function_name": "read", "arguments": {"path": "notes.txt"}}
            ],
            "observation": {"results": [{"source_call_id": "c1", "content": "buy milk"}]},
            "metrics": {"prompt_tokens": 500, "completion_tokens": 40, "cached_tokens": 200,
                        "cost_usd": 0.0004},
            "extra": {"trace": "t-1"},
        },
        {
            "step_id": 3, "timestamp": "2025-10-11T10:30:05Z", "source": "agent",
            "model_name": "m-small", "message": "It says: buy milk.",
            "metrics": {"prompt_tokens": 600, "completion_tokens": 8, "logprobs": [-0.1, -0.2]},
        },
    ],
}  # fmt: skip


def test_foreign_file_is_imported_marked_and_keeps_its_fields(
    sqlite_url: str, tmp_path: Path, validator: Draft202012Validator
) -> None:
    assert_valid(validator, FOREIGN)
    source = tmp_path / "run.json"
    source.write_text(json.dumps(FOREIGN))
    code, out, err = run("import", "atif", str(source), "--db", sqlite_url)
    assert code == 0, out + err
    stream = out.splitlines()[0].split(" -> ")[1].split(" ")[0]
    assert stream.startswith("session-") and "/" not in stream
    (doc,) = export(sqlite_url, tmp_path / "out").values()
    assert_valid(validator, doc)
    for key in ("schema_version", "session_id", "agent", "notes", "final_metrics", "extra"):
        assert doc[key] == FOREIGN[key]
    user, first, last = doc["steps"]
    assert (
        user["timestamp"] == "2025-10-11T10:30:00Z" and user["message"] == "What is in notes.txt?"
    )
    assert first["tool_calls"] == FOREIGN["steps"][1]["tool_calls"]
    assert first["observation"] == FOREIGN["steps"][1]["observation"]
    assert first["reasoning_effort"] == "medium" and first["model_name"] == "m-large"
    assert first["metrics"]["cached_tokens"] == 200 and first["metrics"]["cost_usd"] == 0.0004
    assert first["extra"]["trace"] == "t-1"
    assert last["model_name"] == "m-small" and last["metrics"]["logprobs"] == [-0.1, -0.2]
    with open_store(sqlite_url) as store:
        events = [e.data for e in store.read_stream(stream)]
    started = events[0]
    assert isinstance(started, SessionStarted)
    assert (started.sandbox_backend, started.intent) == ("atif", "What is in notes.txt?")
    (finished,) = [e for e in events if isinstance(e, ToolCallFinished)]
    assert (finished.tool, finished.result_text) == ("read", "buy milk")
    assert finished.details == {NOT_EXECUTED: False}


def test_bad_files_are_reported_and_others_imported(sqlite_url: str, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(FOREIGN))
    (tmp_path / "not-json.json").write_text("{")
    wrong = json.loads(json.dumps(FOREIGN))
    wrong["steps"][1]["step_id"] = 5
    (tmp_path / "gap.json").write_text(json.dumps(wrong))
    code, out, err = run("import", "atif", str(tmp_path), "--db", sqlite_url)
    assert code == 1
    assert out.splitlines()[-1] == "1 imported, 0 already there, 2 failed"
    assert f"Error: {tmp_path / 'gap.json'}: step 5: step_id must be 2" in err
    assert f"Error: {tmp_path / 'not-json.json'}: not JSON" in err
