"""The ToolRunner's event stream, against a real sandbox and the real store."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from ise_es.errors import SandboxUnavailable
from ise_es.events import (
    Event,
    FsDiff,
    HttpExchange,
    OutputChunk,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    encode_checked,
)
from ise_es.sandbox import Sandbox, open_sandbox
from ise_es.store.base import NewEvent
from ise_es.store.sql import SqlEventStore
from ise_es.tools import FixtureWebGateway, ToolRunner, ToolSettings
from tests.tools.conftest import Harness, MakeHarness


def kinds(events: Sequence[object]) -> list[str]:
    return [type(e).__name__ for e in events]


def test_exec_event_sequence(harness: Harness, blobs: SqlEventStore) -> None:
    finished = harness.call("exec", command="printf out1; printf err1 >&2; touch made.txt")
    events = harness.of_call(finished.call_id)
    names = kinds(events)
    assert names[0] == "ToolCallStarted"
    assert names[-2:] == ["ToolCallFinished", "FsDiff"]
    assert set(names[1:-2]) == {"OutputChunk"}
    started = events[0]
    assert isinstance(started, ToolCallStarted)
    assert started.tool == "exec" and json.loads(started.arguments)["command"].startswith("printf")
    chunks = harness.chunks(finished.call_id)
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert b"".join(c.data for c in chunks if c.stream == "stdout") == b"out1"
    assert b"".join(c.data for c in chunks if c.stream == "stderr") == b"err1"
    assert finished.exit_code == 0 and not finished.is_error
    assert finished.stdout_size == 4 and finished.stdout_digest is not None
    assert blobs.get_blob(finished.stdout_digest) == b"out1"
    assert blobs.get_blob(finished.stderr_digest or "") == b"err1"
    assert finished.details["status"] == "completed"
    assert finished.details["exitCode"] == 0
    assert finished.details["cwd"] == harness.runner.sandbox.workspace_path
    assert isinstance(finished.details["durationMs"], int)
    diff = events[-1]
    assert isinstance(diff, FsDiff)
    assert [(c.path, c.kind) for c in diff.changes] == [("made.txt", "added")]
    for event in events:  # everything emitted is a well-formed event the store will accept
        encode_checked(event)


def test_chunks_are_emitted_while_the_command_runs(make_harness: MakeHarness) -> None:
    seen_at_chunk: list[int] = []
    harness = make_harness()
    original = harness.runner.emit

    def emit(event: object) -> None:
        if isinstance(event, OutputChunk):
            seen_at_chunk.append(sum(isinstance(e, ToolCallFinished) for e in harness.events))
        original(event)  # type: ignore[arg-type]

    harness.runner.emit = emit
    harness.call("exec", command="echo one; sleep 0.3; echo two")
    assert len(seen_at_chunk) == 2 and seen_at_chunk == [0, 0]


def test_no_fsdiff_when_nothing_changed(harness: Harness) -> None:
    finished = harness.call("exec", command="cat MEMORY.md >/dev/null")
    assert kinds(harness.of_call(finished.call_id)) == ["ToolCallStarted", "ToolCallFinished"]


def test_chunks_stop_at_the_head_limit_and_blobs_keep_everything(
    make_harness: MakeHarness, blobs: SqlEventStore
) -> None:
    harness = make_harness(settings=ToolSettings(output_head_bytes=100_000))
    finished = harness.call("exec", command="head -c 300000 /dev/zero | tr '\\0' a")
    chunks = harness.chunks(finished.call_id)
    assert all(len(c.data) <= 64 * 1024 for c in chunks)
    assert sum(len(c.data) for c in chunks) == 100_000
    assert finished.truncated
    assert finished.stdout_size == 300_000
    assert blobs.get_blob(finished.stdout_digest or "") == b"a" * 300_000
    assert "bytes of output omitted" in finished.result_text
    assert len(finished.result_text) < 70_000


@pytest.mark.parametrize(
    ("tool", "raw", "expected"),
    [
        ("exec", '{"command": ', "Invalid arguments for exec: arguments are not valid JSON"),
        ("exec", "[]", "Invalid arguments for exec: arguments must be a JSON object"),
        ("exec", "{}", "Invalid arguments for exec: missing required argument 'command'"),
        ("exec", '{"command": ["ls"]}', "argument 'command' must be a string, got array"),
        ("exec", '{"command": "ls", "timeout": "5"}', "argument 'timeout' must be a number"),
        ("exec", '{"command": "ls", "shell": "zsh"}', "unknown argument 'shell'"),
        ("exec", '{"command": "ls", "env": {"1BAD": "x"}}', "argument 'env.1BAD'"),
        ("read", '{"path": "x", "offset": 0}', "argument 'offset' must be >= 1"),
        ("write", '{"path": "x"}', "missing required argument 'content'"),
        ("edit", '{"path": "x", "oldText": "", "newText": "y"}', "argument 'oldText' must not"),
        ("process", '{"action": "poll"}', "missing required argument 'sessionId'"),
        ("process", '{"action": "launch"}', "argument 'action' must be one of"),
        ("web_search", '{"query": "x", "count": 11}', "argument 'count' must be <= 10"),
        ("web_fetch", '{"url": "ftp://x/y"}', "argument 'url' must be an absolute http(s) URL"),
        ("web_fetch", '{"url": "https://x/", "maxChars": 5}', "argument 'maxChars' must be >="),
        ("memory_get", '{"path": "MEMORY.md", "from": "2"}', "argument 'from' must be an int"),
        ("cron", '{"action": "add", "expr": "* * *", "command": "x"}', "argument 'expr': cron"),
        ("cron", '{"action": "add", "expr": "* * * * *"}', "missing required argument 'command'"),
        ("nmap", "{}", "Unknown tool 'nmap'. Available tools: exec, process, read"),
    ],
)
def test_bad_calls_become_recorded_error_results(
    harness: Harness, tool: str, raw: str, expected: str
) -> None:
    finished = harness.call(tool, raw)
    assert expected in finished.result_text
    assert finished.is_error and finished.error == finished.result_text
    assert finished.details == {"status": "error", "tool": tool, "error": finished.result_text}
    assert kinds(harness.of_call(finished.call_id)) == ["ToolCallStarted", "ToolCallFinished"]


def test_sandbox_failure_is_recorded_then_raised(
    backend: str, blobs: SqlEventStore, request: pytest.FixtureRequest
) -> None:
    extra = {"client": request.getfixturevalue("docker_client")} if backend == "docker" else {}
    sandbox: Sandbox = open_sandbox(backend, "notes", blobs=blobs, **extra)
    events: list[object] = []
    runner = ToolRunner(sandbox, blobs, None, events.append)
    sandbox.close()
    with pytest.raises(SandboxUnavailable, match="closed"):
        runner.run(
            ToolCall(id="c", name="exec", arguments='{"command": "true"}'), turn=1, step=0, index=0
        )
    assert kinds(events) == ["ToolCallStarted", "ToolCallFinished"]
    finished = events[-1]
    assert isinstance(finished, ToolCallFinished) and finished.is_error
    assert "closed" in finished.result_text


def test_events_append_to_the_store_as_they_are_emitted(
    backend: str,
    fixture_web: FixtureWebGateway,
    store: SqlEventStore,
    request: pytest.FixtureRequest,
) -> None:
    """The recorder's shape: emit appends each event at once; the stream reads back in order
    and every blob an event names (outputs, file contents, HTTP bodies) is in the same store."""
    extra = {"client": request.getfixturevalue("docker_client")} if backend == "docker" else {}
    sandbox = open_sandbox(backend, "notes", blobs=store, **extra)
    try:
        stream = "session-tooltest"

        def emit(event: Event) -> None:
            store.append(stream, [NewEvent(event)], None)

        with ToolRunner(sandbox, store, fixture_web, emit) as runner:
            for n, (tool, args) in enumerate(
                [
                    ("exec", {"command": "echo hello > hi.txt; cat hi.txt"}),
                    ("web_fetch", {"url": "https://docs.example.com/cli/config.html"}),
                ]
            ):
                call = ToolCall(id=f"c{n}", name=tool, arguments=json.dumps(args))
                runner.run(call, turn=1, step=n, index=n)
        stored = [e.data for e in store.read_stream(stream)]
        assert kinds(stored) == [
            "ToolCallStarted",
            "OutputChunk",
            "ToolCallFinished",
            "FsDiff",
            "ToolCallStarted",
            "HttpExchange",
            "ToolCallFinished",
        ]
        finished = stored[2]
        assert isinstance(finished, ToolCallFinished)
        assert store.get_blob(finished.stdout_digest or "") == b"hello\n"
        http = stored[5]
        assert isinstance(http, HttpExchange) and http.body_digest is not None
        assert b"Configuration file reference" in store.get_blob(http.body_digest)
        diff = stored[3]
        assert isinstance(diff, FsDiff) and diff.changes[0].digest is not None
        assert store.get_blob(diff.changes[0].digest) == b"hello\n"
    finally:
        sandbox.close()
