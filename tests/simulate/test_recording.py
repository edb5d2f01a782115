"""Recording end to end: real sandboxes, real tools, the scripted OpenAI server or scenarios."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
from click.testing import CliRunner

from cli import main
from ise_es.events import (
    AgentMessage,
    FsDiff,
    ModelCall,
    OutputChunk,
    SessionEnded,
    SessionStarted,
    ToolCallFinished,
    UserTurn,
)
from ise_es.fleet.inputs import RecordInput, build_specs
from ise_es.fleet.record import record_specs
from ise_es.fleet.spec import RecordSettings, intent_spec
from ise_es.fleet.worker import WorkerOptions
from ise_es.llm.base import RoleConfig
from ise_es.llm.openai_client import OpenAIChatClient
from ise_es.simulate.session import SessionPlan, record_session
from ise_es.store.sql import SqlEventStore, open_store
from tests.support.fixtures import FIELD_REASONING_MODEL, INLINE_REASONING_MODEL
from tests.support.openai_server import Error, Reply, ScriptedOpenAIServer

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "ise_es" / "data" / "scenarios"


def client(
    server: ScriptedOpenAIServer, role: str, model: str, waits: list[float]
) -> OpenAIChatClient:
    config = RoleConfig(role=role, model=model, base_url=server.base_url, max_retries=3)  # type: ignore[arg-type]
    return OpenAIChatClient(config, environ={}, sleep=waits.append)


def test_three_turn_session_against_an_openai_compatible_server(
    store: SqlEventStore, openai_server: ScriptedOpenAIServer
) -> None:
    user_model, agent_model = FIELD_REASONING_MODEL, INLINE_REASONING_MODEL
    openai_server.script(
        user_model,
        Error(429, retry_after=0.25),
        Reply.user_turn("Create hello.txt containing hi."),
        Reply.user_turn("Show me what it says."),
        Reply.user_turn("Which Python version is installed?"),
        Reply.user_turn("Thanks, done.", completed=True),
    )
    openai_server.script(
        agent_model,
        Error(500),
        Reply.calls(
            ("write", '{"path": "hello.txt", "content": "hi\\n"}'), reasoning="I'll write it."
        ),
        Reply(content="Created hello.txt."),
        Reply.calls(("exec", '{"command": "cat hello.txt"')),  # invalid JSON on purpose
        Reply.calls(("exec", '{"command": "cat hello.txt"}')),
        Reply(content="It says hi.", reasoning="The file holds hi."),
        Reply.calls(
            ("exec", '{"command": "python3 -c \\"import sys; print(sys.version_info[0])\\""}')
        ),
        Reply(content="Python 3."),
    )
    waits: list[float] = []
    plan = SessionPlan(
        intent_id="intent_e2e",
        intent="Create a file and check the Python version.",
        agent=client(openai_server, "agent", agent_model, waits),
        user=client(openai_server, "user", user_model, waits),
        persona={"name": "Ana", "experience_level": "Senior"},
    )
    result = record_session(store, plan, session_id="e2e")
    assert (result.status, result.user_turns, result.tool_calls) == ("completed", 3, 4)
    events = [e.data for e in store.read_stream("session-e2e")]
    kinds = [type(e).__name__ for e in events if not isinstance(e, OutputChunk)]
    assert kinds == [
        "SessionStarted",
        "ModelCall",
        "UserTurn",
        "ModelCall",
        "AgentMessage",
        "ToolCallStarted",
        "ToolCallFinished",
        "FsDiff",
        "ModelCall",
        "AgentMessage",
        "ModelCall",
        "UserTurn",
        "ModelCall",
        "AgentMessage",
        "ToolCallStarted",
        "ToolCallFinished",
        "ModelCall",
        "AgentMessage",
        "ToolCallStarted",
        "ToolCallFinished",
        "ModelCall",
        "AgentMessage",
        "ModelCall",
        "UserTurn",
        "ModelCall",
        "AgentMessage",
        "ToolCallStarted",
        "ToolCallFinished",
        "ModelCall",
        "AgentMessage",
        "ModelCall",
        "UserTurn",
        "SessionEnded",
    ]
    calls = [e for e in events if isinstance(e, ModelCall)]
    assert [len(c.retries) for c in calls][:2] == [1, 1]  # the 429 and the 500, each retried once
    assert calls[0].retries[0]["status"] == 429 and calls[1].retries[0]["status"] == 500
    assert waits[0] == 0.25, "Retry-After was honoured"
    assert all(store.get_blob(c.request_digest or "") for c in calls)
    assert calls[1].usage.total_tokens > 0

    messages = [e for e in events if isinstance(e, AgentMessage)]
    assert messages[0].reasoning == "I'll write it." and "<think>" not in messages[0].text
    assert messages[4].reasoning == "The file holds hi." and messages[4].text == "It says hi."

    finished = [e for e in events if isinstance(e, ToolCallFinished)]
    assert finished[0].result_text.startswith("Successfully wrote 3 bytes to hello.txt")
    assert finished[1].is_error and "arguments" in finished[1].result_text.lower()
    assert finished[2].exit_code == 0 and "hi" in finished[2].result_text
    assert finished[3].result_text.startswith("3")
    chunks = b"".join(
        e.data for e in events if isinstance(e, OutputChunk) and e.call_id == finished[2].call_id
    )
    assert chunks == b"hi\n"
    [diff] = [e for e in events if isinstance(e, FsDiff)]
    assert [(c.path, c.kind, c.size) for c in diff.changes] == [("hello.txt", "added", 3)]
    assert store.get_blob(diff.changes[0].digest or "") == b"hi\n"
    turns = [e for e in events if isinstance(e, UserTurn)]
    assert [t.completed for t in turns] == [False, False, False, True]
    assert openai_server.remaining(user_model) == 0 and openai_server.remaining(agent_model) == 0


def test_unreachable_endpoint_is_an_infrastructure_failure_and_the_run_goes_on(
    store: SqlEventStore, refused_base_url: str
) -> None:
    dead = RoleConfig(role="agent", model="m", base_url=refused_base_url, max_retries=0)
    settings = RecordSettings(
        agent=dead, user=msgspec.structs.replace(dead, role="user"), template="empty"
    )
    specs = [
        intent_spec("dead", "do x", {"id": "dead"}, settings),
        *build_specs(RecordInput(scenario_path=SCENARIOS / "03-web-research.yaml"), {}),
    ]
    options = WorkerOptions(max_attempts=2, backoff_seconds=0.0, poll_seconds=0.05)
    run = record_specs(store, specs, options=options)
    assert run.report is not None
    assert run.report.statuses == {"completed": 1, "error": 2}
    states = {r.source_id: (r.state, r.failures) for r in store.queue.items()}
    assert states == {"dead": ("failed", 2), "scenario-03-web-research": ("done", 0)}
    dead_streams = [s for s in store.streams("session-") if s.version <= 3]
    assert len(dead_streams) == 2
    events = [e.data for e in store.read_stream(dead_streams[0].stream_id)]
    failed = next(e for e in events if isinstance(e, ModelCall))
    assert failed.error and refused_base_url.split("//")[1].split("/")[0] in failed.error
    end = events[-1]
    assert isinstance(end, SessionEnded) and end.status == "error" and end.infrastructure


def test_shipped_scenarios_record_completed_with_real_outputs(
    store: SqlEventStore, db_url: str
) -> None:
    result = CliRunner().invoke(main, ["record", "--scenario", str(SCENARIOS), "--db", db_url])
    assert result.exit_code == 0, result.output
    sessions = store.streams("session-")
    assert len(sessions) == 6
    all_events = [e.data for s in sessions for e in store.read_stream(s.stream_id)]
    ends = [e for e in all_events if isinstance(e, SessionEnded)]
    assert [e.status for e in ends] == ["completed"] * 6
    finished = [e for e in all_events if isinstance(e, ToolCallFinished)]
    assert {e.tool for e in finished} >= {
        "exec",
        "write",
        "read",
        "edit",
        "apply_patch",
        "process",
        "web_fetch",
        "web_search",
        "cron",
        "memory_search",
        "memory_get",
    }
    assert any(e.exit_code == 127 for e in finished), "command not found is recorded"
    assert any("FAILED (failures=1)" in e.result_text for e in finished), "the failing test ran"
    assert any(e.result_text.rstrip().endswith("OK") for e in finished), "and then passed"
    assert store.verify().ok
    again = CliRunner().invoke(main, ["record", "--scenario", str(SCENARIOS), "--db", db_url])
    assert again.exit_code == 0 and len(store.streams("session-")) == 6, "resume skips them"
    listed = CliRunner().invoke(main, ["sessions", "list", "--json", "--db", db_url])
    assert [json.loads(line)["status"] for line in listed.output.splitlines()] == ["completed"] * 6
    sid = json.loads(listed.output.splitlines()[0])["session_id"]
    shown = CliRunner().invoke(main, ["sessions", "show", sid, "--db", db_url])
    assert "FAILED (failures=1)" in shown.output and "modified src/mathkit/text.py" in shown.output


def scenario_copy(directory: Path, name: str, command: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.yaml").write_text(
        f"intent: Run {command}\nturns:\n  - user: please run it\n    agent:\n"
        f"      - tool_calls:\n          - exec: {{command: {json.dumps(command)}}}\n"
        f"      - text: done\n"
    )


def sandbox_mounts(owner_pid: int | None = None) -> set[str]:
    """Mount points of local sandboxes, optionally only those a given process owns (other
    processes on the machine may run sandboxes of their own meanwhile)."""
    with open("/proc/mounts") as f:
        points = {line.split()[1] for line in f if "ise-es-sbx" in line}
    if owner_pid is None:
        return points

    def owned(point: str) -> bool:
        try:
            return (Path(point).parent / "owner").read_text().split()[0] == str(owner_pid)
        except (OSError, IndexError):
            return False

    return {p for p in points if owned(p)}


def test_four_workers_over_eight_intents(store: SqlEventStore, db_url: str, tmp_path: Path) -> None:
    for i in range(8):
        scenario_copy(tmp_path / "many", f"s{i}", f"echo {i} > out.txt && sleep 0.3")
    result = CliRunner().invoke(
        main, ["record", "--scenario", str(tmp_path / "many"), "--workers", "4", "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    starts = [e.data for e in store.read_all(types=["session_started"])]
    assert sorted(s.intent_id for s in starts if isinstance(s, SessionStarted)) == [
        f"scenario-s{i}" for i in range(8)
    ]
    assert not sandbox_mounts(owner_pid=os.getpid()), "a sandbox's mount was left behind"


def test_resume_after_kill_9(db_url: str, store: SqlEventStore, tmp_path: Path) -> None:
    scenario_copy(tmp_path / "s", "a-slow", "sleep 4")
    scenario_copy(tmp_path / "s", "b-quick", "echo quick")
    cmd = [sys.executable, "-m", "cli", "record", "--scenario", str(tmp_path / "s"), "--db", db_url]
    cmd += ["--lease-seconds", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not store.read_all(types=["tool_call_started"]):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "expired leases reclaimed" in rerun.stderr, rerun.stderr
    by_intent: dict[str, list[tuple[int, str]]] = {}
    for s in store.streams("session-"):
        events = [e.data for e in store.read_stream(s.stream_id)]
        start, end = events[0], events[-1]
        assert isinstance(start, SessionStarted) and isinstance(end, SessionEnded)
        by_intent.setdefault(start.intent_id, []).append((start.attempt, end.status))
    assert sorted(by_intent["scenario-a-slow"])[0] == (1, "interrupted")
    assert by_intent["scenario-b-quick"] == [(1, "completed")]
    assert sorted(by_intent["scenario-a-slow"]) == [(1, "interrupted"), (2, "completed")]


def test_bad_scenario_names_file_and_field(tmp_path: Path, sqlite_url: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "intent: x\nturns:\n  - user: hi\n    agent:\n      - text: ok\n        colour: red\n"
    )
    result = CliRunner().invoke(main, ["record", "--scenario", str(bad), "--db", sqlite_url])
    assert result.exit_code == 2
    assert f"{bad}: invalid scenario" in result.output and "colour" in result.output


def test_broken_intents_line_names_file_and_line(tmp_path: Path, sqlite_url: str) -> None:
    intents = tmp_path / "intents.jsonl"
    intents.write_text('{"id": "i1", "natural_language_intent": "do x"}\n{"id": "i2", "natural_\n')
    result = CliRunner().invoke(
        main,
        [
            "record",
            "--intents",
            str(intents),
            "--db",
            sqlite_url,
            "--agent-model",
            "m",
            "--user-model",
            "m",
        ],
    )
    assert result.exit_code == 2
    assert f"{intents}:2:" in result.output
    with open_store(sqlite_url) as store:
        assert store.streams() == []


def _ctrl_c_at_its_default() -> None:
    """In the child before exec: SIGINT as a terminal's foreground process has it. A test run
    started in the background (`cmd &` in a shell without job control) inherits SIGINT
    ignored, Python then installs no KeyboardInterrupt handler, and the recording would never
    see the Ctrl-C this test sends (it ran to its end and exited 0)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_sessions_in_flight_interrupted_and_removes_sandboxes(
    sqlite_url: str, tmp_path: Path
) -> None:
    scenario_copy(tmp_path / "s", "slow", "sleep 30")
    cmd = [
        sys.executable,
        "-m",
        "cli",
        "record",
        "--scenario",
        str(tmp_path / "s"),
        "--db",
        sqlite_url,
    ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_ctrl_c_at_its_default,
    )
    with open_store(sqlite_url) as store:
        deadline = time.monotonic() + 60
        while not store.read_all(types=["tool_call_started"]):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.3)  # the tool is running its sleep now
        stopped_at = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(60) != 0
        assert time.monotonic() - stopped_at < 2.0, "Ctrl-C waited for the tool"
        leftover = sandbox_mounts(owner_pid=proc.pid)
        [session] = store.streams("session-")
        last = store.read_stream(session.stream_id)[-1].data
    assert isinstance(last, SessionEnded) and last.status == "interrupted"
    assert not leftover, "Ctrl-C left the sandbox mounted"
