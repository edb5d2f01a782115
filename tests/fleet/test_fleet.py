"""The fleet end to end: worker processes sharing one queue against a scripted OpenAI-compatible
server, kill -9, SIGSTOP past the lease, an endpoint down then up, edited input, drain.

Every session records for real (bubblewrap sandboxes, real commands); workers are real
processes (`python -m cli worker`) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.events import SessionEnded, SessionStarted
from ise_es.store.sql import SqlEventStore, open_store
from tests.support.openai_server import Error, ScriptedOpenAIServer, serve_conversations

ROOT = Path(__file__).resolve().parents[2]
AGENT, USER = "fleet-agent", "fleet-user"

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[ScriptedOpenAIServer]:
    with ScriptedOpenAIServer() as s:
        yield s


def write_intents(path: Path, n: int, text: str = "Check the disk usage") -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": f"i{k:02d}", "natural_language_intent": f"{text} ({k})"}) + "\n"
            for k in range(n)
        )
    )
    return path


def enqueue(db_url: str, intents: Path, server: ScriptedOpenAIServer) -> None:
    result = CliRunner().invoke(
        main,
        [
            "record",
            "--intents",
            str(intents),
            "--enqueue-only",
            "--db",
            db_url,
            *("--agent-model", AGENT, "--agent-base-url", server.base_url, "--agent-retries", "0"),
            *("--user-model", USER, "--user-base-url", server.base_url, "--user-retries", "0"),
        ],
    )
    assert result.exit_code == 0, result.output


def start_worker(db_url: str, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "cli", "worker", "--db", db_url, *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def sessions_by_intent(store: SqlEventStore) -> dict[str, list[tuple[int, str, str, str]]]:
    """intent -> [(attempt, end status or 'open', worker, stream id)]."""
    out: dict[str, list[tuple[int, str, str, str]]] = {}
    for info in store.streams("session-"):
        events = [e.data for e in store.read_stream(info.stream_id)]
        start, end = events[0], events[-1]
        assert isinstance(start, SessionStarted)
        status = end.status if isinstance(end, SessionEnded) else "open"
        worker = str(start.provenance.get("worker", ""))
        out.setdefault(start.intent_id, []).append((start.attempt, status, worker, info.stream_id))
    return {k: sorted(v) for k, v in out.items()}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def tool_started(store: SqlEventStore) -> bool:
    return any(
        e.type == "tool_call_started"
        for info in store.streams("session-")
        for e in store.read_stream(info.stream_id)
    )


def test_three_worker_processes_share_one_queue(
    db_url: str, server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    serve_conversations(server, agent_model=AGENT, user_model=USER, latency_s=0.05)
    enqueue(db_url, write_intents(tmp_path / "intents.jsonl", 30), server)
    workers = [
        start_worker(db_url, "--until-empty", "--workers", "3", "--worker-id", f"w{n}")
        for n in range(3)
    ]
    for proc in workers:
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err.decode()[-2000:]
    with open_store(db_url) as store:
        by_intent = sessions_by_intent(store)
        assert sorted(by_intent) == [f"i{k:02d}" for k in range(30)]
        for intent, sessions in by_intent.items():
            assert [(a, s) for a, s, _, _ in sessions] == [(1, "completed")], intent
        used = {w for sessions in by_intent.values() for _, _, w, _ in sessions}
        assert used <= {"w0", "w1", "w2"} and len(used) >= 2, used
        assert {r.state for r in store.queue.items()} == {"done"}
        assert store.verify().ok


def test_kill_9_mid_session_another_worker_records_attempt_2(
    db_url: str, server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    serve_conversations(server, agent_model=AGENT, user_model=USER, command="sleep 4")
    enqueue(db_url, write_intents(tmp_path / "intents.jsonl", 1), server)
    with open_store(db_url) as store:
        first = start_worker(db_url, "--lease-seconds", "2", "--worker-id", "doomed")
        wait_for(lambda: tool_started(store), 60, "the first worker's tool call")
        first.kill()
        first.communicate(timeout=30)
        second = start_worker(db_url, "--until-empty", "--lease-seconds", "2")
        _, err = second.communicate(timeout=120)
        assert second.returncode == 0, err.decode()[-2000:]
        [(a1, s1, w1, cut), (a2, s2, _, _)] = sessions_by_intent(store)["i00"]
        assert (a1, s1, w1) == (1, "interrupted", "doomed") and (a2, s2) == (2, "completed")
        end = store.read_stream(cut)[-1].data
        assert isinstance(end, SessionEnded) and "lease lost" in end.reason
        [item] = store.queue.items()
        assert (item.state, item.status, item.attempts) == ("done", "completed", 2)
        assert store.verify().ok


def test_a_worker_paused_past_its_lease_cannot_append_and_stops(
    db_url: str, server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    serve_conversations(server, agent_model=AGENT, user_model=USER, command="sleep 3")
    enqueue(db_url, write_intents(tmp_path / "intents.jsonl", 1), server)
    with open_store(db_url) as store:
        paused = start_worker(
            db_url, "--until-empty", "--max-sessions", "1", "--lease-seconds", "2"
        )
        wait_for(lambda: tool_started(store), 60, "the first worker's tool call")
        os.kill(paused.pid, signal.SIGSTOP)
        try:
            time.sleep(2.5)  # past the lease
            taker = start_worker(db_url, "--until-empty", "--lease-seconds", "2")
            wait_for(
                lambda: len(sessions_by_intent(store).get("i00", [])) == 2,
                60,
                "the second worker's attempt",
            )
            [(_, status, _, cut), _] = sessions_by_intent(store)["i00"]
            assert status == "interrupted"
            closed_at = store.read_stream(cut)[-1].version
            time.sleep(1.5)  # the paused worker's sleep 3 has finished inside its sandbox
        finally:
            os.kill(paused.pid, signal.SIGCONT)
        _, err = paused.communicate(timeout=60)
        assert paused.returncode == 0, err.decode()[-2000:]
        after = store.read_stream(cut)
        assert after[-1].version == closed_at, "an append of the fenced-out worker landed"
        assert isinstance(after[-1].data, SessionEnded) and "lease lost" in after[-1].data.reason
        _, err = taker.communicate(timeout=120)
        assert taker.returncode == 0, err.decode()[-2000:]
        assert [(a, s) for a, s, _, _ in sessions_by_intent(store)["i00"]] == [
            (1, "interrupted"),
            (2, "completed"),
        ]
        assert store.verify().ok


def test_endpoint_down_then_up_retries_then_completes(
    db_url: str, server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    failures = [0]

    def failing() -> Error | None:
        failures[0] += 1
        return Error(503, "endpoint down") if failures[0] <= 2 else None

    serve_conversations(server, agent_model=AGENT, user_model=USER, failing=failing)
    enqueue(db_url, write_intents(tmp_path / "intents.jsonl", 1), server)
    args = ["worker", "--db", db_url, "--until-empty", "--backoff-seconds", "0.1"]
    result = CliRunner().invoke(main, [*args, "--max-attempts", "5"])
    assert result.exit_code == 0, result.output
    with open_store(db_url) as store:
        ends = [store.read_stream(s)[-1].data for _, _, _, s in sessions_by_intent(store)["i00"]]
        assert [(e.status, e.infrastructure) for e in ends if isinstance(e, SessionEnded)] == [
            ("error", True),
            ("error", True),
            ("completed", False),
        ]
        [item] = store.queue.items()
        assert (item.state, item.status, item.failures) == ("done", "completed", 2)


def test_endpoint_down_for_good_fails_after_max_attempts_and_retry_brings_it_back(
    db_url: str, server: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    down = [True]
    serve_conversations(
        server,
        agent_model=AGENT,
        user_model=USER,
        failing=lambda: Error(503, "endpoint down") if down[0] else None,
    )
    enqueue(db_url, write_intents(tmp_path / "intents.jsonl", 2), server)
    args = ["worker", "--db", db_url, "--until-empty", "--backoff-seconds", "0"]
    result = CliRunner().invoke(main, [*args, "--max-attempts", "2"])
    assert result.exit_code == 0, result.output
    with open_store(db_url) as store:
        assert [(r.state, r.failures) for r in store.queue.items()] == [("failed", 2)] * 2
        assert "endpoint down" in (store.queue.items()[0].last_error or "")
    retried = CliRunner().invoke(main, ["queue", "retry", "--status", "failed", "--db", db_url])
    assert retried.exit_code == 0 and "re-queued 2 items" in retried.output
    result = CliRunner().invoke(main, [*args, "--max-attempts", "1"])  # still down: failed again
    with open_store(db_url) as store:
        assert [r.state for r in store.queue.items()] == ["failed"] * 2
    again = CliRunner().invoke(
        main,
        [
            "record",
            "--intents",
            str(tmp_path / "intents.jsonl"),
            "--enqueue-only",
            "--db",
            db_url,
            *("--agent-model", AGENT, "--agent-base-url", server.base_url, "--agent-retries", "0"),
            *("--user-model", USER, "--user-base-url", server.base_url, "--user-retries", "0"),
        ],
    )
    assert "2 failed ones queued again" in again.output, "asking again records failed items"
    down[0] = False
    result = CliRunner().invoke(main, [*args, "--max-attempts", "2"])
    assert result.exit_code == 0, result.output
    with open_store(db_url) as store:
        assert [(r.state, r.status, r.attempts) for r in store.queue.items()] == [
            ("done", "completed", 4)
        ] * 2


def scenario(directory: Path, name: str, intent: str, command: str = "echo hi") -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(
        f"intent: {intent}\nturns:\n  - user: please do it\n    agent:\n"
        f"      - tool_calls:\n          - exec: {{command: {json.dumps(command)}}}\n"
        f"      - text: done\n"
    )


def test_edited_input_is_recorded_again_and_unchanged_input_is_not(
    db_url: str, tmp_path: Path
) -> None:
    scenarios = tmp_path / "s"
    scenario(scenarios, "a", "Say hi")
    scenario(scenarios, "b", "Say ho")
    record = ["record", "--scenario", str(scenarios), "--db", db_url]
    assert CliRunner().invoke(main, record).exit_code == 0
    again = CliRunner().invoke(main, record)
    assert again.exit_code == 0 and "queued 0 new, 2 unchanged" in again.output
    scenario(scenarios, "a", "Say hi twice")
    edited = CliRunner().invoke(main, record)
    assert edited.exit_code == 0, edited.output
    assert "queued 1 new, 1 unchanged, 1 older versions superseded" in edited.output
    with open_store(db_url) as store:
        by_intent = sessions_by_intent(store)
        assert len(by_intent["scenario-a"]) == 2 and len(by_intent["scenario-b"]) == 1
        states = sorted((r.source_id, r.state) for r in store.queue.items())
        assert states == [
            ("scenario-a", "done"),
            ("scenario-a", "superseded"),
            ("scenario-b", "done"),
        ]
    exported = tmp_path / "sft.jsonl"
    result = CliRunner().invoke(main, ["project", "sft-jsonl", "-o", str(exported), "--db", db_url])
    assert result.exit_code == 0, result.output
    firsts = [
        json.loads(line)["messages"][1]["content"] for line in exported.read_text().splitlines()
    ]
    assert len(firsts) == 2, "the superseded version of scenario-a is not exported"
    folder = tmp_path / "hf"
    result = CliRunner().invoke(main, ["project", "hf-dataset", "-o", str(folder), "--db", db_url])
    assert result.exit_code == 0, result.output
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sum(f["rows"] for f in manifest["files"] if f.get("split")) == 2
    forced = CliRunner().invoke(main, [*record, "--force"])
    assert forced.exit_code == 0
    with open_store(db_url) as store:
        assert len(sessions_by_intent(store)["scenario-b"]) == 2


def enqueue_scenarios(db_url: str, directory: Path) -> None:
    args = ["record", "--scenario", str(directory), "--enqueue-only", "--db", db_url]
    assert CliRunner().invoke(main, args).exit_code == 0


def test_sigterm_drains_a_session_in_flight_to_its_end(db_url: str, tmp_path: Path) -> None:
    scenario(tmp_path / "s", "short", "Wait a bit", command="sleep 2")
    CliRunner().invoke(
        main, ["record", "--scenario", str(tmp_path / "s"), "--enqueue-only", "--db", db_url]
    )
    with open_store(db_url) as store:
        proc = start_worker(db_url, "--drain-timeout", "30")
        wait_for(lambda: tool_started(store), 60, "the tool call")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        [item] = store.queue.items()
        assert (item.state, item.status) == ("done", "completed")


def test_sigterm_past_the_drain_timeout_stops_the_session_and_releases_it(
    db_url: str, tmp_path: Path
) -> None:
    scenario(tmp_path / "s", "long", "Wait long", command="sleep 30")
    CliRunner().invoke(
        main, ["record", "--scenario", str(tmp_path / "s"), "--enqueue-only", "--db", db_url]
    )
    with open_store(db_url) as store:
        proc = start_worker(db_url, "--drain-timeout", "1")
        wait_for(lambda: tool_started(store), 60, "the tool call")
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert time.monotonic() - signalled < 5.0
        [(_, status, _, _)] = sessions_by_intent(store)["scenario-long"]
        assert status == "interrupted"
        [item] = store.queue.items()
        assert (item.state, item.failures) == ("queued", 0), "a drained item is not a failure"


def test_an_idle_worker_picks_up_work_enqueued_after_it_started(
    db_url: str, tmp_path: Path
) -> None:
    scenario(tmp_path / "s", "later", "Arrives later")
    with open_store(db_url) as store:
        proc = start_worker(db_url, "--max-sessions", "1")
        time.sleep(2.0)  # idle: waiting on LISTEN (PostgreSQL) or polling (SQLite)
        assert proc.poll() is None
        enqueue_scenarios(db_url, tmp_path / "s")
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()[-2000:]
        [item] = store.queue.items()
        assert (item.state, item.status) == ("done", "completed")
