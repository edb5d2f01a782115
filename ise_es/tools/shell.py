"""The `exec` and `process` tools.

A plain `exec` runs through `Sandbox.exec`, whose output is streamed as OutputChunk events while
the command runs. `background`, `yieldMs` and `pty` run the command as a process session instead
(see `ise_es.tools.process`): background returns at once with the session's name; yieldMs waits
that long and either reports the finished command like a plain exec or leaves it running; pty
alone runs it on a terminal in the foreground.
"""

from __future__ import annotations

import posixpath
import re
import time
from typing import Any

from ise_es.tools.base import Tool, ToolContext, ToolOutcome, error_outcome
from ise_es.tools.output import OutputRecorder
from ise_es.tools.process import ProcessSession, key_bytes
from ise_es.tools.schema import ArgumentError

__all__ = ["EXEC", "PROCESS"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_TIMEOUT_S = 120.0
FOLLOW_UP = "Use process (list/poll/log/write/kill/clear/remove) for follow-up."


def _cwd(ctx: ToolContext, workdir: str | None) -> str:
    root = ctx.sandbox.workspace_path
    if not workdir:
        return root
    return posixpath.normpath(posixpath.join(root, workdir))


def _result_text(
    output: str, exit_code: int | None, sig: int | None, timed_out: bool, timeout: float | None
) -> str:
    notes: list[str] = []
    if timed_out:
        limit = f" after {timeout:g} seconds" if timeout else ""
        notes.append(f"(Command timed out{limit} and was killed)")
    elif exit_code is None and sig is not None:
        notes.append(f"(Command was killed by signal {sig})")
    elif exit_code not in (0, None):
        notes.append(f"(Command exited with code {exit_code})")
    if not output and not notes:
        return "(no output)"
    body = output.rstrip("\n") if notes else output
    return "\n\n".join(part for part in (body, *notes) if part)


def _details(
    cwd: str, exit_code: int | None, sig: int | None, timed_out: bool, duration_ms: float
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "status": "completed" if exit_code is not None and not timed_out else "error",
        "exitCode": exit_code,
        "durationMs": round(duration_ms),
        "cwd": cwd,
    }
    if sig is not None:
        details["signal"] = sig
    if timed_out:
        details["timedOut"] = True
    return details


def _check_env(env: dict[str, str] | None) -> None:
    for name in env or {}:
        if not _ENV_NAME.match(name):
            raise ArgumentError(f"argument 'env.{name}': not a valid environment variable name")


def run_exec(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    command: str = args["command"]
    env: dict[str, str] | None = args.get("env")
    workdir: str | None = args.get("workdir")
    timeout: float | None = args.get("timeout")
    _check_env(env)
    if not command.strip():
        raise ArgumentError("argument 'command' must not be blank")
    if args.get("background") or args.get("yieldMs") is not None or args.get("pty"):
        return _exec_session(ctx, args)
    settings = ctx.settings
    recorder = OutputRecorder(
        ctx.call_id,
        ctx.emit,
        head_limit=settings.output_head_bytes,
        text_head=settings.result_head_bytes,
        text_tail=settings.result_tail_bytes,
    )
    result = ctx.sandbox.exec(
        command, timeout=timeout, env=env, workdir=workdir, on_chunk=recorder.feed
    )
    return ToolOutcome(
        text=_result_text(
            recorder.text(), result.exit_code, result.signal, result.timed_out, timeout
        ),
        exit_code=result.exit_code,
        signal=result.signal,
        timed_out=result.timed_out,
        stdout_digest=result.stdout_digest,
        stdout_size=result.stdout_size,
        stderr_digest=result.stderr_digest,
        stderr_size=result.stderr_size,
        truncated=result.truncated or recorder.dropped_chunks,
        details=_details(
            _cwd(ctx, workdir),
            result.exit_code,
            result.signal,
            result.timed_out,
            result.duration_ms,
        ),
    )


def _exec_session(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    command: str = args["command"]
    workdir: str | None = args.get("workdir")
    timeout: float | None = args.get("timeout")
    background = bool(args.get("background"))
    yield_ms: float | None = args.get("yieldMs")
    cwd = _cwd(ctx, workdir)
    session = ctx.processes.spawn(
        command,
        pty=bool(args.get("pty")),
        env=args.get("env"),
        workdir=workdir,
        timeout=timeout if timeout is not None else (None if background else DEFAULT_TIMEOUT_S),
    )
    running = {"status": "running", "sessionId": session.name, "pid": session.pid, "cwd": cwd}
    still_running = (
        f"Command still running (session {session.name}, pid {session.pid}). {FOLLOW_UP}"
    )
    if background:
        return ToolOutcome(text=still_running, details=running)
    settings = ctx.settings
    recorder = OutputRecorder(
        ctx.call_id,
        ctx.emit,
        head_limit=settings.output_head_bytes,
        text_head=settings.result_head_bytes,
        text_tail=settings.result_tail_bytes,
        capture_cap=settings.process_blob_cap,
    )
    wait_s = yield_ms / 1000.0 if yield_ms is not None else None
    cursor = _follow(ctx, session, recorder, wait_s)
    if session.running:
        # Left running: what the agent saw here is not shown again by the next poll.
        session.poll_cursor = cursor
        assert recorder.captures is not None
        for capture in recorder.captures.values():
            capture.discard()
        seen = recorder.text()
        text = still_running + (f"\n\nOutput so far:\n{seen}" if seen else "")
        return ToolOutcome(text=text, details=running, truncated=recorder.dropped_chunks)
    ctx.processes.discard(session.name)
    assert recorder.captures is not None
    stdout, stderr = recorder.captures["stdout"], recorder.captures["stderr"]
    duration_ms = ((session.ended or ctx.clock()) - session.started) * 1000.0
    return ToolOutcome(
        text=_result_text(
            recorder.text(), session.exit_code, session.signal, session.timed_out, timeout
        ),
        exit_code=session.exit_code,
        signal=session.signal,
        timed_out=session.timed_out,
        stdout_digest=stdout.finish(ctx.blobs),
        stdout_size=stdout.size,
        stderr_digest=stderr.finish(ctx.blobs),
        stderr_size=stderr.size,
        truncated=recorder.dropped_chunks,
        details=_details(cwd, session.exit_code, session.signal, session.timed_out, duration_ms),
    )


def _follow(
    ctx: ToolContext, session: ProcessSession, recorder: OutputRecorder, wait_s: float | None
) -> int:
    """Feed the session's output to `recorder` until it ends or `wait_s` passes (None: until
    it ends, which its timeout guarantees). Returns the cursor after the last output fed."""
    # Real time, not ctx.clock: this waits on threads, and an injected clock is for recording.
    deadline = None if wait_s is None else time.monotonic() + wait_s
    cursor = 0
    while True:
        remaining = 0.5 if deadline is None else max(0.0, deadline - time.monotonic())
        session.wait_for_output(cursor, min(remaining, 0.5))
        cursor, segments, _ = session.read_from(cursor)
        for stream, data in segments:
            recorder.feed(stream, data)
        if not session.running:
            session.wait(None)
            cursor, segments, _ = session.read_from(cursor)
            for stream, data in segments:
                recorder.feed(stream, data)
            return cursor
        if deadline is not None and time.monotonic() >= deadline:
            return cursor


EXEC = Tool(
    name="exec",
    description=(
        "Run a shell command (bash) in the workspace and return its output. Long-running "
        "commands: set background=true (returns a session id at once) or yieldMs (wait that "
        "long, then leave it running); use the process tool to follow up. Set pty=true for "
        "programs that need a terminal."
    ),
    parameters={
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "Shell command to run."},
            "workdir": {
                "type": "string",
                "description": "Working directory (default: the workspace).",
            },
            "env": {
                "type": "object",
                "description": "Extra environment variables.",
                "additionalProperties": {"type": "string"},
            },
            "timeout": {
                "type": "number",
                "minimum": 0.1,
                "description": "Kill the command after this many seconds.",
            },
            "background": {
                "type": "boolean",
                "description": "Start in the background and return a session id immediately.",
            },
            "yieldMs": {
                "type": "integer",
                "minimum": 0,
                "description": "Wait this many ms for the command; if still running, "
                "leave it in the background and return a session id.",
            },
            "pty": {
                "type": "boolean",
                "description": "Run in a pseudo-terminal (for interactive programs).",
            },
        },
        "required": ["command"],
        "additionalProperties": False,
    },
    execute=run_exec,
)


# ---------------------------------------------------------------------------------------------
# process
# ---------------------------------------------------------------------------------------------

_NEEDS_SESSION = {"poll", "log", "write", "send-keys", "submit", "paste", "kill", "clear", "remove"}
_MAX_POLL_MS = 120_000
_DEFAULT_LOG_LINES = 200
_QUIET_S = 0.3


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _session_details(session: ProcessSession) -> dict[str, Any]:
    return {
        "status": session.status(),
        "sessionId": session.name,
        "pid": session.pid,
        "exitCode": session.exit_code,
    }


def run_process(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    action: str = args["action"]
    manager = ctx.processes
    if action == "list":
        return _list(ctx)
    name = args.get("sessionId")
    if action in _NEEDS_SESSION and not name:
        raise ArgumentError(f"missing required argument 'sessionId' for action '{action}'")
    assert isinstance(name, str)
    session = manager.get(name)
    if action == "poll":
        return _poll(session, args)
    if action == "log":
        return _log(session, args)
    if action == "kill":
        if not session.running:
            return ToolOutcome(
                text=f"Session {name} is not running. {session.status_line()}",
                details=_session_details(session),
            )
        session.kill()
        session.wait(5.0)
        return ToolOutcome(text=f"Killed session {name}.", details=_session_details(session))
    if action in ("clear", "remove"):
        if session.running and action == "clear":
            return error_outcome(
                "process", f"session {name} is still running; kill it first or use remove"
            )
        details = _session_details(session)
        manager.discard(name)
        verb = "Removed" if action == "remove" else "Cleared"
        return ToolOutcome(text=f"{verb} session {name}.", details=details)
    return _send(session, action, args)


def _list(ctx: ToolContext) -> ToolOutcome:
    sessions = list(ctx.processes.sessions.values())
    if not sessions:
        return ToolOutcome(text="No background sessions.", details={"sessions": []})
    lines = []
    for s in sessions:
        state = s.status_line().removeprefix("Process ").rstrip(".")
        lines.append(f"{s.name}  pid {s.pid}  {state}  :: {s.command}")
    return ToolOutcome(
        text="\n".join(lines),
        details={"sessions": [_session_details(s) | {"command": s.command} for s in sessions]},
    )


def _poll(session: ProcessSession, args: dict[str, Any]) -> ToolOutcome:
    wait_ms = min(float(args.get("timeout") or 0), _MAX_POLL_MS)
    if wait_ms > 0:
        _settle(session, wait_ms / 1000.0)
    cursor, segments, gap = session.read_from(session.poll_cursor)
    session.poll_cursor = cursor
    output = _decode(b"".join(data for _, data in segments))
    parts = []
    if gap:
        parts.append("[older output was dropped from the in-memory log]")
    parts.append(output.rstrip("\n") if output else "(no new output)")
    parts.append(session.status_line())
    return ToolOutcome(text="\n\n".join(parts), details=_session_details(session))


def _settle(session: ProcessSession, wait_s: float) -> None:
    """Wait until the program ends, or its new output has gone quiet, or `wait_s` passes.

    "Quiet" (no new bytes for _QUIET_S) is what lets an agent poll an interactive program
    (a REPL answering one line) without waiting out the whole timeout.
    """
    deadline = time.monotonic() + wait_s
    cursor, _, _ = session.read_from(session.poll_cursor)
    seen_output = cursor > session.poll_cursor
    while session.running:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        session.wait_for_output(cursor, min(remaining, _QUIET_S) if seen_output else remaining)
        new_cursor, _, _ = session.read_from(cursor)
        if new_cursor == cursor and seen_output:
            return
        seen_output = seen_output or new_cursor > cursor
        cursor = new_cursor


def _log(session: ProcessSession, args: dict[str, Any]) -> ToolOutcome:
    lines = _decode(session.log_bytes()).splitlines()
    limit: int = args.get("limit") or _DEFAULT_LOG_LINES
    offset: int | None = args.get("offset")
    start = max(len(lines) - limit, 0) if offset is None else min(offset, len(lines))
    chosen = lines[start : start + limit]
    text = "\n".join(chosen) if chosen else "(no output)"
    if len(chosen) < len(lines):
        text += f"\n\n[lines {start + 1}-{start + len(chosen)} of {len(lines)}]"
    return ToolOutcome(text=f"{text}\n\n{session.status_line()}", details=_session_details(session))


def _send(session: ProcessSession, action: str, args: dict[str, Any]) -> ToolOutcome:
    name = session.name
    if action == "write":
        data: str | None = args.get("data")
        eof = bool(args.get("eof"))
        if data is None and not eof:
            raise ArgumentError("action 'write' needs argument 'data' (or eof=true)")
        payload = (data or "").encode()
        if payload:
            session.write(payload)
        if eof:
            session.close_stdin()
        text = f"Wrote {len(payload)} bytes to session {name}." + (" Sent EOF." if eof else "")
    elif action == "send-keys":
        keys: list[str] | None = args.get("keys")
        if not keys:
            raise ArgumentError("action 'send-keys' needs argument 'keys' (a non-empty array)")
        session.write(b"".join(key_bytes(k) for k in keys))
        text = f"Sent {len(keys)} key(s) to session {name}."
    elif action == "submit":
        line = args.get("data") if args.get("data") is not None else args.get("text")
        # A terminal's Enter is CR; a program reading a pipe wants LF.
        session.write((line or "").encode() + (b"\r" if session.pty else b"\n"))
        text = f"Submitted {len((line or '').encode())} bytes and Enter to session {name}."
    elif action == "paste":
        pasted: str | None = args.get("text") if args.get("text") is not None else args.get("data")
        if pasted is None:
            raise ArgumentError("action 'paste' needs argument 'text'")
        body = pasted.encode()
        # Bracketed paste lets terminal programs tell pasted text from typed keys.
        session.write(b"\x1b[200~" + body + b"\x1b[201~" if session.pty else body)
        text = f"Pasted {len(body)} bytes into session {name}."
    else:  # pragma: no cover - the schema's enum rules this out
        raise ArgumentError(f"argument 'action': unknown action {action!r}")
    return ToolOutcome(text=text, details=_session_details(session))


PROCESS = Tool(
    name="process",
    description=(
        "Manage background sessions started by exec (background/yieldMs/pty): list them, poll "
        "new output (optionally waiting `timeout` ms), read the log (line offset/limit), write "
        "to stdin, send keys (Enter, C-c, Up...), submit a line, paste text, kill, clear or "
        "remove a session."
    ),
    parameters={
        "type": "object",
        "properties": {
            "action": {
                "type": "string",
                "enum": [
                    "list",
                    "poll",
                    "log",
                    "write",
                    "send-keys",
                    "submit",
                    "paste",
                    "kill",
                    "clear",
                    "remove",
                ],
            },
            "sessionId": {"type": "string", "description": "Session name from exec."},
            "data": {"type": "string", "description": "Bytes to write (write, submit)."},
            "keys": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Key names or literal strings (send-keys).",
            },
            "text": {"type": "string", "description": "Text to paste (paste)."},
            "eof": {"type": "boolean", "description": "Close stdin after writing (write)."},
            "offset": {"type": "integer", "minimum": 0, "description": "First log line (0-based)."},
            "limit": {"type": "integer", "minimum": 1, "description": "Log lines to return."},
            "timeout": {
                "type": "integer",
                "minimum": 0,
                "description": "poll: wait up to this many ms for the program to finish.",
            },
        },
        "required": ["action"],
        "additionalProperties": False,
    },
    execute=run_process,
)
