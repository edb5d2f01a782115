"""`ise-es replay --all`: a small corpus on PostgreSQL, two workers, summary and rate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.events import ReplayEnded
from ise_es.store.sql import open_store
from replay.rate import determinism_rate
from tests.replay.conftest import ROOT, SCENARIOS, record, replay


def corpus_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "corpus"
    directory.mkdir()
    for i in range(3):
        (directory / f"quick-{i}.yaml").write_text(
            f"intent: Write {i}\nturns:\n  - user: write it\n    agent:\n"
            f"      - tool_calls:\n          - exec: {{command: 'echo {i} > n.txt && cat n.txt'}}\n"
            "      - text: done\ndone: thanks\n"
        )
    shutil.copy(SCENARIOS / "nondeterministic.yaml", directory / "nondeterministic.yaml")
    return directory


@pytest.mark.postgres
def test_all_with_two_workers_on_postgres(pg_url: str, tmp_path: Path) -> None:
    sessions = record(pg_url, corpus_dir(tmp_path))
    assert len(sessions) == 4
    code, corpus, err = replay(pg_url, "--all", "--status", "completed", "--workers", "2")
    assert code == 0, corpus["summary"]
    summary = corpus["summary"]
    assert summary["outcomes"] == {
        "reproducible": 3,
        "equivalent": 1,
        "diverged": 0,
        "failed": 0,
    }
    assert summary["normalizers_fired"] == {"pids": 1, "temp-paths": 1, "timestamps": 1}
    assert summary["steps"] == 3 + 5 and summary["step_determinism"] == 1.0
    assert sorted(r["session_id"] for r in corpus["sessions"]) == sorted(sessions)
    assert "replaying" in err, "the progress display goes to stderr"

    code, raw, _ = replay(pg_url, "--all", "--workers", "2", "--no-normalize", "all")
    assert code == 1
    assert raw["summary"]["outcomes"]["diverged"] == 1
    # Root causes only: the later steps of that session are consequences, counted once.
    assert raw["summary"]["divergence_causes"] == {"exec stdout": 1, "exec result_text": 1}

    with open_store(pg_url) as store:
        replays = store.streams("replay-")
        ended = [store.read_stream(r.stream_id)[-1].data for r in replays]
        rate = determinism_rate(store)
    assert len(replays) == 8 and all(isinstance(e, ReplayEnded) for e in ended)
    assert (rate.replays, rate.sessions) == (8, 4)
    assert rate.statuses == {"diverged": 1, "reproduced": 3}
    assert rate.reproducible_rate == 0.75
    assert rate.step_rate == pytest.approx((3 * 1.0 + 1 / 5) / 4)


def test_summary_table_names_outcomes_and_causes(sqlite_url: str, tmp_path: Path) -> None:
    record(sqlite_url, corpus_dir(tmp_path))
    result = CliRunner().invoke(
        main,
        ["replay", "--all", "--no-normalize", "all", "--db", sqlite_url],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 1
    out = result.stdout
    assert "replay summary" in out and "most frequent divergence causes" in out
    for row in ("reproducible", "equivalent", "diverged", "failed"):
        assert row in out
    assert "4 sessions, 8 steps, step determinism 50.0%" in out
    assert "latest replay of each of 4 sessions: 75.0% reproducible or equivalent" in out


def test_all_on_an_empty_store_says_so(sqlite_url: str) -> None:
    result = CliRunner().invoke(main, ["replay", "--all", "--db", sqlite_url])
    assert result.exit_code == 0 and "no sessions to replay" in result.stdout
    code, corpus, _ = replay(sqlite_url, "--all")
    assert code == 0 and corpus["summary"]["sessions"] == 0 and corpus["sessions"] == []


def test_imported_sessions_are_left_out_of_all_and_refused_without_sandbox(
    sqlite_url: str,
) -> None:
    openclaw = ROOT / "fixtures" / "openclaw" / "session-logs.jsonl"
    imported = CliRunner().invoke(main, ["import", "openclaw", str(openclaw), "--db", sqlite_url])
    assert imported.exit_code == 0, imported.output
    code, corpus, _ = replay(sqlite_url, "--all")
    assert code == 0 and corpus["summary"]["imported_skipped"] == 1 and corpus["sessions"] == []
    with open_store(sqlite_url) as store:
        (stream,) = [s.stream_id for s in store.streams("session-")]
    code, report, _ = replay(sqlite_url, stream)
    assert code == 2 and report["replay_id"] is None and report["aborted"]
    assert "ran on 'openclaw', not in an ise-es sandbox" in report["reason"]
    code, report, _ = replay(sqlite_url, stream, "--sandbox", "local")
    assert report["replay_id"] and report["steps"], "its calls ran in an empty local workspace"
    assert code == 1 and report["status"] == "diverged"
