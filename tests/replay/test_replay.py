"""`ise-es replay SESSION_ID` end to end: real recordings, real sandboxes, real stores."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ise_es.events import (
    ReplayEnded,
    ReplayStarted,
    SessionStarted,
    StepReplayed,
    ToolCallFinished,
    ToolCallStarted,
)
from ise_es.sandbox import Sandbox, load_template, open_sandbox, pinned_environment
from ise_es.store.sql import SqlEventStore, open_store
from replay.corpus import select_sessions
from replay.model import StepResult
from replay.runner import replay_session
from tests.replay.conftest import ROOT, SHIPPED, record, replay, replay_text


def steps_by_verdict(report: dict[str, Any]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for step in report["steps"]:
        out.setdefault(step["verdict"], []).append(step["index"])
    return out


def test_shipped_scenarios_replay_identical_except_where_pids_and_durations_show(
    sqlite_url: str,
) -> None:
    """Four shipped scenarios replay identical. Two print things that differ between runs, so
    they may only be `equivalent`, and only through the normalizer that explains it:
    01-fix-failing-test shows unittest's "Ran 3 tests in 0.001s" (durations, when the timing
    differs); 05-background-process shows the host pid of its background interpreter (pids,
    always). 05 waits for the interpreter's prompt before typing, so its pty transcript does not
    depend on timing."""
    record(sqlite_url, SHIPPED)
    code, corpus, _ = replay(sqlite_url, "--all")
    with open_store(sqlite_url) as store:
        scenario_of = {
            e.stream_id: e.data.scenario
            for e in store.read_all(types=["session_started"])
            if isinstance(e.data, SessionStarted)
        }
    outcomes = {}
    for report in corpus["sessions"]:
        fired = sorted({n for s in report["steps"] for n in s["normalizers_fired"]})
        outcomes[scenario_of[report["source_stream"]]] = (report["status"], tuple(fired))
    assert len(outcomes) == 6 and code == 0
    assert outcomes.pop("05-background-process") == ("equivalent", ("pids",))
    assert outcomes.pop("01-fix-failing-test") in {
        ("reproduced", ()),
        ("equivalent", ("durations",)),
    }
    assert outcomes == {name: ("reproduced", ()) for name in outcomes}


def test_nondeterministic_output_is_equivalent_with_normalizers_and_diverged_without(
    sqlite_url: str, scenario_dir: Callable[[str], Path]
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("nondeterministic"))
    code, report, _ = replay(sqlite_url, sid)
    assert code == 0 and report["status"] == "equivalent"
    assert steps_by_verdict(report) == {"equivalent": [0, 1, 2, 3], "identical": [4]}
    by_index = {s["index"]: s for s in report["steps"]}
    assert by_index[0]["normalizers_fired"] == ["timestamps"]
    assert by_index[1]["normalizers_fired"] == ["pids"]
    assert by_index[2]["normalizers_fired"] == ["temp-paths"]
    stamp = next(d for d in by_index[3]["differences"] if d["field"] == "fs:stamp.txt")
    assert stamp["status"] == "equivalent" and stamp["normalizers"] == ["timestamps"]
    where = by_index[2]["differences"][0]["where"][0]
    assert where["line"] == 1 and where["recorded"].startswith("/tmp/tmp.")
    assert where["recorded"] != where["replayed"]

    code, raw, _ = replay(sqlite_url, sid, "--no-normalize", "all")
    assert code == 1 and raw["status"] == "diverged" and raw["normalizers"] == []
    assert steps_by_verdict(raw) == {"diverged": [0, 1, 2, 3], "identical": [4]}
    assert raw["first_divergence"] == 0
    assert [s["after_divergence"] for s in raw["steps"]] == [False, True, True, True, True]
    first = raw["steps"][0]["differences"]
    assert {d["field"] for d in first} == {"stdout", "result_text"}
    assert all(d["diff"].startswith("--- recorded\n+++ replayed\n") for d in first)

    code, only_pids, _ = replay(sqlite_url, sid, "--no-normalize", "all", "--normalize", "pids")
    assert code == 1 and steps_by_verdict(only_pids)["equivalent"] == [1]


def test_stop_at_first_stops_and_counts_the_rest(
    sqlite_url: str, scenario_dir: Callable[[str], Path]
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("nondeterministic"))
    code, report, _ = replay(sqlite_url, sid, "--no-normalize", "all", "--stop-at-first")
    assert code == 1
    assert [s["index"] for s in report["steps"]] == [0] and report["skipped"] == 4
    assert any("--stop-at-first" in note for note in report["notes"])
    with open_store(sqlite_url) as store:
        ended = store.read_stream(f"replay-{report['replay_id']}")[-1].data
    assert isinstance(ended, ReplayEnded) and ended.counts["skipped"] == 4


def test_human_report_shows_first_divergence_counts_and_score(
    sqlite_url: str, scenario_dir: Callable[[str], Path]
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("nondeterministic"))
    code, out, _ = replay_text(sqlite_url, sid[:6], "--no-normalize", "all")
    assert code == 1
    assert "First divergence: step 0 (turn 1) exec" in out
    assert "Later divergence (possibly a consequence): step 1" in out
    assert "--- recorded" in out and "+++ replayed" in out
    assert "Steps: identical 1, equivalent 0, diverged 4, missing 0" in out
    assert "determinism 20.0% (1/5 steps)" in out
    code, out, _ = replay_text(sqlite_url, sid)
    assert code == 0 and "timestamps" in out and "Status: equivalent" in out


def test_changed_template_is_refused_naming_both_digests(
    sqlite_url: str, scenario_dir: Callable[[str], Path], data_template: Path
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("steady"), template=data_template)
    recorded = load_template(str(data_template)).digest
    (data_template / "data.txt").write_text("alpha\nbeta\ngamma\n")
    now = load_template(str(data_template), refresh=True).digest
    code, out, err = replay_text(sqlite_url, sid)
    assert code == 2 and out == ""
    assert f"has digest {now}, but session {sid} was recorded with digest {recorded}" in err
    assert "--allow-template-change" in err
    with open_store(sqlite_url) as store:
        assert store.streams("replay-") == [], "a refused replay records nothing"


def test_template_edit_that_breaks_a_command_diverges_at_that_step(
    sqlite_url: str, scenario_dir: Callable[[str], Path], data_template: Path
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("steady"), template=data_template)
    code, before, _ = replay(sqlite_url, sid)
    assert code == 0 and before["status"] == "reproduced"
    (data_template / "data.txt").write_text("alpha\ngamma\n")
    load_template(str(data_template), refresh=True)
    code, report, _ = replay(sqlite_url, sid, "--allow-template-change")
    assert code == 1 and report["status"] == "diverged"
    assert report["first_divergence"] == 1
    assert any("--allow-template-change" in note for note in report["notes"])
    first = report["steps"][1]
    assert first["tool"] == "exec" and "check.sh" in first["arguments"]
    fields = {d["field"]: d for d in first["differences"]}
    assert (fields["exit_code"]["recorded"], fields["exit_code"]["replayed"]) == ("0", "1")
    assert "-ok" in fields["stdout"]["diff"]
    assert steps_by_verdict(report)["identical"][0] == 0
    later = {s["index"]: s for s in report["steps"]}
    # The later steps do the same as before (data.txt still has two lines) but are flagged as
    # coming after a divergence.
    assert [(later[i]["verdict"], later[i]["after_divergence"]) for i in (2, 3)] == [
        ("identical", True),
        ("identical", True),
    ]


def _wait_for(
    store: SqlEventStore, predicate: Callable[[], bool], proc: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 60
    while not predicate():
        assert time.monotonic() < deadline, "the recorder never got there"
        assert proc.poll() is None, "the recorder exited early"
        time.sleep(0.05)


def test_session_killed_with_sigkill_replays_its_recorded_prefix(
    sqlite_url: str, sqlite_store: SqlEventStore, scenario_dir: Callable[[str], Path]
) -> None:
    directory = scenario_dir("interrupted")
    cmd = [sys.executable, "-m", "cli", "record", "--scenario", str(directory), "--db", sqlite_url]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(
        sqlite_store, lambda: len(sqlite_store.read_all(types=["tool_call_started"])) == 3, proc
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    (stream,) = select_sessions(sqlite_store, status="running")
    events = [e.data for e in sqlite_store.read_stream(stream)]
    assert isinstance(events[-1], ToolCallStarted) and "sleep 60" in events[-1].arguments
    version = sqlite_store.streams(stream)[0].version
    code, report, _ = replay(sqlite_url, stream)
    assert code == 0 and report["status"] == "reproduced"
    assert [s["index"] for s in report["steps"]] == [0, 1]
    assert report["source_version"] == version
    (note,) = report["notes"]
    assert "ends inside call 2 (exec" in note and "prefix of 2 finished call(s)" in note
    code, corpus, _ = replay(sqlite_url, "--all", "--status", "running")
    assert code == 0 and corpus["summary"]["outcomes"]["reproducible"] == 1


def test_replay_stream_is_appended_and_the_source_is_untouched(
    store: SqlEventStore, db_url: str, scenario_dir: Callable[[str], Path], data_template: Path
) -> None:
    (sid,) = record(db_url, scenario_dir("steady"), template=data_template)
    stream = f"session-{sid}"
    (before,) = store.streams(stream)
    for _ in range(2):
        code, report, _ = replay(db_url, sid)
        assert code == 0
    (after,) = store.streams(stream)
    assert (after.version, after.head_hash) == (before.version, before.head_hash)
    replays = store.streams("replay-")
    assert len(replays) == 2
    events = [e.data for e in store.read_stream(f"replay-{report['replay_id']}")]
    started, *steps, ended = events
    assert isinstance(started, ReplayStarted) and isinstance(ended, ReplayEnded)
    assert started.source_stream == stream and started.source_version == before.version
    assert started.template_digest == load_template(str(data_template)).digest
    assert started.normalizers == report["normalizers"]
    assert [type(s) for s in steps] == [StepReplayed] * 4
    assert [s.index for s in steps if isinstance(s, StepReplayed)] == [0, 1, 2, 3]
    assert (ended.status, ended.determinism, ended.counts["identical"]) == ("reproduced", 1.0, 4)
    assert store.verify().ok


def _handmade_session(store: SqlEventStore) -> str:
    """A session whose recording lacks things replay needs: the stdout blob of a call (its
    digest differs from what runs now, so only the bytes could tell how), and the response of a
    web fetch."""
    template = load_template("empty")
    missing_digest = hashlib.sha256(b"hello\n").hexdigest()
    store.append(
        "session-handmade0001",
        [
            SessionStarted(
                session_id="handmade0001",
                intent_id="handmade",
                intent="x",
                sandbox_backend="local",
                template="empty",
                template_digest=template.digest,
                environment=pinned_environment(),
            ),
            ToolCallStarted(call_id="c0", tool="exec", arguments='{"command": "echo hi"}'),
            ToolCallFinished(
                call_id="c0",
                tool="exec",
                result_text="hi\n",
                exit_code=0,
                stdout_digest=missing_digest,
                stdout_size=6,
            ),
            ToolCallStarted(
                call_id="c1",
                tool="web_fetch",
                arguments='{"url": "https://docs.example.com/"}',
                index=1,
            ),
            ToolCallFinished(call_id="c1", tool="web_fetch", result_text="Docs home"),
        ],
        0,
    )
    return "handmade0001"


def test_missing_blob_and_missing_recorded_response_are_reported_not_papered_over(
    sqlite_url: str,
) -> None:
    with open_store(sqlite_url) as store:
        sid = _handmade_session(store)
    code, report, _ = replay(sqlite_url, sid)
    assert code == 1 and report["status"] == "failed" and "could not be checked" in report["reason"]
    echo, fetch = report["steps"]
    stdout = next(d for d in echo["differences"] if d["field"] == "stdout")
    assert stdout["status"] == "missing" and "is not in the store" in stdout["note"]
    assert echo["verdict"] == "missing" and [d["field"] for d in echo["differences"]] == ["stdout"]
    assert fetch["verdict"] == "missing"
    http = next(d for d in fetch["differences"] if d["field"] == "http")
    assert "no recorded response for GET https://docs.example.com/" in http["note"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchsession"], "no session 'nosuchsession'"),
        (["abc", "--all"], "exactly one of SESSION_ID or --all"),
        ([], "exactly one of SESSION_ID or --all"),
        (["--all", "--no-normalize", "clock"], "unknown normalizer 'clock'"),
        (["abc", "--workers", "2"], "--status and --workers go with --all"),
    ],
)
def test_bad_invocations_exit_2_with_a_message(
    sqlite_url: str, args: list[str], message: str
) -> None:
    code, out, err = replay_text(sqlite_url, *args)
    assert code == 2 and message in err and out == ""


def test_sandbox_dying_mid_replay_ends_the_replay_failed(
    sqlite_url: str, scenario_dir: Callable[[str], Path], data_template: Path
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("steady"), template=data_template)
    opened: list[Sandbox] = []

    def keep(*args: Any, **kwargs: Any) -> Sandbox:
        opened.append(open_sandbox(*args, **kwargs))
        return opened[-1]

    def close_after_first(step: StepResult) -> None:
        if step.index == 0:
            opened[0].close()  # the real sandbox goes away under the replay

    with open_store(sqlite_url) as store:
        report = replay_session(store, sid, on_step=close_after_first, sandbox_factory=keep)
        ended = store.read_stream(f"replay-{report.replay_id}")[-1].data
    assert report.aborted and report.status == "failed" and report.exit_code == 2
    assert [s.verdict for s in report.steps] == ["identical", "diverged"]
    assert report.skipped == 2
    assert report.reason.startswith("the sandbox failed at step 1: SandboxUnavailable")
    assert isinstance(ended, ReplayEnded) and ended.status == "failed"
    assert ended.reason.startswith("the sandbox failed at step 1")
