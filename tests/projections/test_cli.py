"""`ise-es project ...` and `ise-es import openclaw` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from cli import main
from ise_es.store.sql import open_store
from tests.projections.builders import SessionBuilder, simple_session

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openclaw"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_import_then_project(sqlite_url: str, tmp_path: Path) -> None:
    code, out, _ = run("import", "openclaw", str(FIXTURES), "--db", sqlite_url)
    assert code == 0, out
    assert out.splitlines()[-1] == "2 imported, 0 already there, 0 failed"
    code, out, _ = run("import", "openclaw", str(FIXTURES), "--db", sqlite_url)
    assert (code, out.splitlines()[-1]) == (0, "0 imported, 2 already there, 0 failed")

    code, out, _ = run(
        "project", "stats", "--json", "--plots", str(tmp_path / "p"), "--db", sqlite_url
    )
    assert code == 0
    stats = json.loads(out)
    assert stats["complete_trajectories"] == 2
    assert stats["total_tool_calls"] == 6
    assert "user_turn_values" not in stats
    assert len(list((tmp_path / "p").glob("*.png"))) == 5

    code, out, _ = run("project", "audit", "--db", sqlite_url)
    assert code == 0
    assert "100.00% of 6 tool calls well-formed" in out

    target = tmp_path / "sft.jsonl"
    code, out, _ = run(
        "project", "sft-jsonl", "-o", str(target), "--format", "middle", "--db", sqlite_url
    )
    assert code == 0
    assert out.startswith(f"{target}: 2 samples, {target.stat().st_size} bytes")
    code, out, _ = run(
        "project", "sft-jsonl", "-o", str(target), "--format", "middle", "--db", sqlite_url
    )
    assert "up to date" in out


def test_broken_file_exits_1_naming_file_and_line(sqlite_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        (FIXTURES / "session-logs.jsonl").read_text().replace('"type": "custom"', '"type": ')
    )
    code, out, err = run("import", "openclaw", str(bad), "--db", sqlite_url)
    assert code == 1
    assert f"Error: {bad}:4: not a JSON object" in err
    assert out.splitlines()[-1] == "0 imported, 0 already there, 1 failed"


def test_usage_errors_exit_2(sqlite_url: str, tmp_path: Path) -> None:
    code, _, err = run(
        "project",
        "sft-jsonl",
        "-o",
        str(tmp_path / "x.jsonl"),
        "--format",
        "sharegpt",
        "--reasoning",
        "field",
        "--db",
        sqlite_url,
    )
    assert code == 2
    assert "Error: sharegpt has no reasoning field: use --reasoning think" in err
    code, _, err = run(
        "project",
        "sft-jsonl",
        "-o",
        str(tmp_path / "x.jsonl"),
        "--split",
        "train=0.9",
        "--db",
        sqlite_url,
    )
    assert code == 2
    assert "add up to 0.9, not 1" in err


def test_audit_lists_flagged_sessions_and_json(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        simple_session("fine").append_to(store)
        b = SessionBuilder("drift")
        b.user("Is there anything else I can help with?")
        b.agent("No.")
        b.end().append_to(store)
    code, out, _ = run("project", "audit", "--db", sqlite_url)
    assert code == 0
    assert "session-drift:" in out
    assert "role_drift turn 1: 'Is there anything else I can help'" in out
    code, out, _ = run("project", "audit", "--json", "--db", sqlite_url)
    data = json.loads(out)
    assert data["summary"]["sessions"] == 2
    assert [a["session_id"] for a in data["flagged"]] == ["drift"]
