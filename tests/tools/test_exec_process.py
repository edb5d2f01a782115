"""exec (foreground, background, yieldMs, pty) and process, in a real sandbox."""

from __future__ import annotations

import os
import time

import pytest

from ise_es.sandbox import Sandbox
from ise_es.store.sql import SqlEventStore
from ise_es.tools import SessionNamer, ToolRunner
from tests.tools.conftest import Harness

FOLLOW_UP = "Use process (list/poll/log/write/kill/clear/remove) for follow-up."


def host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains `marker` (sandboxed processes are visible from the
    host's PID namespace)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def needs_pipes(request: pytest.FixtureRequest) -> None:
    """Declare the known gap: docker sessions always run on a terminal (see
    ise_es.tools.process._TERMINAL_ONLY_BACKENDS), so exact pipe-mode output differs there
    (CRLF line ends, echoed input, stderr merged into stdout)."""
    if request.getfixturevalue("backend") == "docker":
        request.applymarker(
            pytest.mark.xfail(reason="docker sessions run on a pty (no pipes)", strict=True)
        )


def wait_until(predicate: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


# -- foreground exec ---------------------------------------------------------------------------


def test_exec_output_and_exit_codes(harness: Harness) -> None:
    assert harness.call("exec", command="echo hello").result_text == "hello\n"
    assert harness.call("exec", command="true").result_text == "(no output)"
    failed = harness.call("exec", command="echo oops >&2; exit 3")
    assert failed.result_text == "oops\n\n(Command exited with code 3)"
    assert failed.exit_code == 3 and not failed.is_error
    assert failed.details["status"] == "completed" and failed.details["exitCode"] == 3


def test_exec_workdir_and_env(harness: Harness, sandbox: Sandbox) -> None:
    finished = harness.call(
        "exec", command='pwd; echo "$GREETING"', workdir="memory", env={"GREETING": "hi there"}
    )
    assert finished.result_text == f"{sandbox.workspace_path}/memory\nhi there\n"
    assert finished.details["cwd"] == f"{sandbox.workspace_path}/memory"
    missing = harness.call("exec", command="true", workdir="no/such/dir")
    assert missing.is_error and "no/such/dir" in missing.result_text


def test_exec_timeout_kills_and_says_so(harness: Harness) -> None:
    started = time.monotonic()
    finished = harness.call("exec", command="sleep 100", timeout=1)
    assert time.monotonic() - started < 3
    assert finished.timed_out and finished.exit_code is None
    assert finished.result_text == "(Command timed out after 1 seconds and was killed)"
    assert finished.details["status"] == "error" and finished.details["timedOut"] is True


def test_exec_non_utf8_output_is_byte_exact_in_chunks_and_blobs(
    harness: Harness, blobs: SqlEventStore
) -> None:
    finished = harness.call("exec", command="printf 'caf\\xe9\\xff\\n'")
    raw = b"caf\xe9\xff\n"
    assert b"".join(c.data for c in harness.chunks(finished.call_id)) == raw
    assert blobs.get_blob(finished.stdout_digest or "") == raw
    assert finished.result_text == "caf\ufffd\ufffd\n"


def test_exec_keeps_arrival_order_across_streams(harness: Harness) -> None:
    # The pauses give each write time to reach the recorder before the other stream's next
    # one; at 50 ms a starved Docker engine was seen to read the two pipes out of order.
    finished = harness.call(
        "exec",
        command="for i in 1 2 3; do echo out$i; sleep 0.2; echo err$i >&2; sleep 0.2; done",
    )
    order = [(c.stream, c.data.strip()) for c in harness.chunks(finished.call_id)]
    assert order == [
        (stream, f"{name}{i}".encode())
        for i in (1, 2, 3)
        for stream, name in (("stdout", "out"), ("stderr", "err"))
    ]
    assert finished.result_text == "out1\nerr1\nout2\nerr2\nout3\nerr3\n"


# -- background sessions -----------------------------------------------------------------------


def test_background_exec_then_poll_log_list_and_remove(
    harness: Harness, request: pytest.FixtureRequest
) -> None:
    needs_pipes(request)
    started = time.monotonic()
    bg = harness.call("exec", command="for i in 1 2 3 4 5; do echo line$i; done", background=True)
    assert time.monotonic() - started < 1.0
    name = bg.details["sessionId"]
    pid = bg.details["pid"]
    assert bg.result_text == f"Command still running (session {name}, pid {pid}). {FOLLOW_UP}"
    assert bg.details["status"] == "running" and bg.exit_code is None

    listed = harness.call("process", action="list")
    assert listed.result_text.startswith(f"{name}  pid {pid}  ")
    assert listed.details["sessions"][0]["sessionId"] == name

    polled = harness.call("process", action="poll", sessionId=name, timeout=5000)
    assert polled.result_text == (
        "line1\nline2\nline3\nline4\nline5\n\nProcess exited with code 0."
    )
    assert polled.details == {"status": "completed", "sessionId": name, "pid": pid, "exitCode": 0}
    again = harness.call("process", action="poll", sessionId=name)
    assert again.result_text == "(no new output)\n\nProcess exited with code 0."

    log = harness.call("process", action="log", sessionId=name, offset=1, limit=2)
    assert log.result_text == "line2\nline3\n\n[lines 2-3 of 5]\n\nProcess exited with code 0."
    last = harness.call("process", action="log", sessionId=name, limit=1)
    assert last.result_text.startswith("line5\n\n[lines 5-5 of 5]")

    removed = harness.call("process", action="remove", sessionId=name)
    assert removed.result_text == f"Removed session {name}."
    gone = harness.call("process", action="poll", sessionId=name)
    assert gone.is_error and f"no process session named '{name}'" in gone.result_text


def test_yield_ms_reports_a_quick_command_like_a_foreground_exec(
    harness: Harness, blobs: SqlEventStore, request: pytest.FixtureRequest
) -> None:
    needs_pipes(request)
    finished = harness.call(
        "exec", command="echo quick; sleep 0.1; echo warn >&2; exit 2", yieldMs=5000
    )
    assert finished.result_text == "quick\nwarn\n\n(Command exited with code 2)"
    assert finished.exit_code == 2 and finished.details["status"] == "completed"
    assert blobs.get_blob(finished.stdout_digest or "") == b"quick\n"
    assert blobs.get_blob(finished.stderr_digest or "") == b"warn\n"
    assert sorted(c.stream for c in harness.chunks(finished.call_id)) == ["stderr", "stdout"]
    assert harness.runner.processes.sessions == {}


def test_yield_ms_leaves_a_slow_command_running(
    harness: Harness, request: pytest.FixtureRequest
) -> None:
    needs_pipes(request)
    finished = harness.call("exec", command="echo started; sleep 1.5; echo finished", yieldMs=500)
    name = finished.details["sessionId"]
    assert finished.result_text.startswith(f"Command still running (session {name}, pid ")
    assert finished.result_text.endswith("Output so far:\nstarted\n")
    polled = harness.call("process", action="poll", sessionId=name, timeout=10_000)
    assert polled.result_text == "finished\n\nProcess exited with code 0."


def test_background_session_times_out(harness: Harness) -> None:
    bg = harness.call("exec", command="sleep 100", background=True, timeout=0.5)
    name = bg.details["sessionId"]
    polled = harness.call("process", action="poll", sessionId=name, timeout=5000)
    assert polled.result_text.endswith("Process timed out and was killed.")
    assert polled.details["status"] == "failed"


def test_kill_leaves_no_process_behind(harness: Harness) -> None:
    marker = "987654.25"
    bg = harness.call("exec", command=f"sleep {marker}", background=True)
    name = bg.details["sessionId"]
    assert wait_until(lambda: host_processes_with(f"sleep {marker}"))
    killed = harness.call("process", action="kill", sessionId=name)
    assert killed.result_text == f"Killed session {name}."
    assert wait_until(lambda: not host_processes_with(f"sleep {marker}"))
    again = harness.call("process", action="kill", sessionId=name)
    assert again.result_text == f"Session {name} is not running. Process was killed."


def test_closing_the_runner_kills_its_sessions(sandbox: Sandbox, blobs: SqlEventStore) -> None:
    marker = "987653.25"
    runner = ToolRunner(sandbox, blobs, None, lambda e: None)
    from ise_es.events import ToolCall

    runner.run(
        ToolCall(
            id="c", name="exec", arguments=f'{{"command": "sleep {marker}", "background": true}}'
        ),
        turn=1,
        step=0,
        index=0,
    )
    assert wait_until(lambda: host_processes_with(f"sleep {marker}"))
    runner.close()
    assert wait_until(lambda: not host_processes_with(f"sleep {marker}"))


def test_session_names_are_deterministic(sandbox: Sandbox, blobs: SqlEventStore) -> None:
    from ise_es.events import ToolCall

    def names(seed: int) -> list[str]:
        with ToolRunner(
            sandbox, blobs, None, lambda e: None, name_factory=SessionNamer(seed)
        ) as runner:
            out = []
            for n in range(3):
                finished = runner.run(
                    ToolCall(
                        id=f"c{n}", name="exec", arguments='{"command": "true", "background": true}'
                    ),
                    turn=1,
                    step=n,
                    index=n,
                )
                assert not finished.is_error, finished.result_text
                out.append(finished.details["sessionId"])
            return out

    assert names(3) == names(3)
    assert names(3) != names(4)


# -- interactive programs ----------------------------------------------------------------------


def test_python_repl_on_a_pty(harness: Harness) -> None:
    bg = harness.call("exec", command="python3 -q -i", pty=True, background=True)
    name = bg.details["sessionId"]
    harness.call("process", action="poll", sessionId=name, timeout=3000)  # the banner/prompt
    submitted = harness.call("process", action="submit", sessionId=name, data="print(6 * 7)")
    assert submitted.result_text == f"Submitted 12 bytes and Enter to session {name}."
    answer = harness.call("process", action="poll", sessionId=name, timeout=5000)
    assert "42" in answer.result_text.splitlines()
    assert answer.result_text.endswith("Process still running.")
    pasted = harness.call("process", action="paste", sessionId=name, text="x = 5")
    assert pasted.result_text == f"Pasted 5 bytes into session {name}."
    harness.call("process", action="submit", sessionId=name)  # Enter ends the pasted line
    harness.call("process", action="submit", sessionId=name, data="print(x + 1)")
    assert "6" in harness.call("process", action="poll", sessionId=name, timeout=5000).result_text
    keys = harness.call("process", action="send-keys", sessionId=name, keys=["C-d"])
    assert keys.result_text == f"Sent 1 key(s) to session {name}."
    done = harness.call("process", action="poll", sessionId=name, timeout=5000)
    assert done.result_text.endswith("Process exited with code 0.")


def test_bash_read_over_pipes(harness: Harness, request: pytest.FixtureRequest) -> None:
    needs_pipes(request)
    bg = harness.call(
        "exec",
        command='read -r name; echo "hello $name"; read -r x; echo "bye $x"',
        background=True,
    )
    name = bg.details["sessionId"]
    wrote = harness.call("process", action="write", sessionId=name, data="Ada\n")
    assert wrote.result_text == f"Wrote 4 bytes to session {name}."
    first = harness.call("process", action="poll", sessionId=name, timeout=3000)
    assert first.result_text == "hello Ada\n\nProcess still running."
    harness.call("process", action="write", sessionId=name, eof=True)
    last = harness.call("process", action="poll", sessionId=name, timeout=3000)
    assert last.result_text == "bye \n\nProcess exited with code 0."


def test_process_errors(harness: Harness) -> None:
    bg = harness.call("exec", command="sleep 30", background=True)
    name = bg.details["sessionId"]
    clear = harness.call("process", action="clear", sessionId=name)
    assert clear.is_error and "still running; kill it first or use remove" in clear.result_text
    no_data = harness.call("process", action="write", sessionId=name)
    assert no_data.is_error and "needs argument 'data'" in no_data.result_text
    harness.call("process", action="kill", sessionId=name)
    late = harness.call("process", action="write", sessionId=name, data="x")
    assert late.is_error and "has already exited" in late.result_text
    cleared = harness.call("process", action="clear", sessionId=name)
    assert cleared.result_text == f"Cleared session {name}."
    assert harness.call("process", action="list").result_text == "No background sessions."
