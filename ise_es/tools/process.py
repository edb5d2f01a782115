"""Background and interactive programs: the process table behind `exec` (background, yieldMs,
pty) and the `process` tool (list, poll, log, write, send-keys, submit, paste, kill, clear,
remove).

A session runs the host command line from `Sandbox.interactive_argv`, so it gets the sandbox's
isolation and limits. With a pty it is driven by pexpect (stdout and stderr arrive merged, as on
a terminal); without one, by plain pipes (the streams stay apart). A reader thread drains the
program's output into a bounded in-memory log as it comes, so a chatty program never blocks on
a full pipe between two tool calls. On pipes each stream has its own reader, so the order
between stdout and stderr is exact only for writes that are not simultaneous. The session's
process group is killed on `kill`, on its timeout, and when the manager closes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ise_es.errors import ToolError
from ise_es.events import ChunkStream
from ise_es.sandbox.base import Sandbox

if TYPE_CHECKING:
    import pexpect

__all__ = ["ProcessManager", "ProcessSession", "key_bytes"]

# The host side of a session only needs to find the sandbox launcher; the sandbox builds the
# program's own environment, so nothing of ours leaks in.
_HOST_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

Segment = tuple[ChunkStream, bytes]

_TERMINAL_ONLY_BACKENDS = frozenset({"docker"})
"""Backends whose `interactive_argv` always asks for a terminal (`docker exec -t` refuses to
start on pipes): their sessions run on a pty even when pty=false was asked, so stdout and
stderr arrive merged there. `interactive_argv` has no way to ask for pipes yet."""


class ProcessSession:
    """One running (or finished) background program."""

    def __init__(
        self,
        name: str,
        command: str,
        argv: list[str],
        *,
        pty: bool,
        cwd: str,
        timeout: float | None,
        log_cap: int,
        clock: Callable[[], float],
    ) -> None:
        self.name = name
        self.command = command
        self.cwd = cwd
        self.pty = pty
        self._clock = clock
        self.started = clock()
        self.ended: float | None = None
        self.exit_code: int | None = None
        self.signal: int | None = None
        self.timed_out = False
        self.killed = False
        self._log_cap = log_cap
        self._segments: list[Segment] = []
        self._dropped = 0
        """Segments dropped from the front of the log (so cursors stay absolute)."""
        self._kept_bytes = 0
        self.poll_cursor = 0
        self._cond = threading.Condition()
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stdin_open = True
        self._child: pexpect.spawn | None = None
        self._popen: subprocess.Popen[bytes] | None = None
        self._timer: threading.Timer | None = None  # before the readers: _finish reads it
        self.pid: int = self._spawn_pty(argv) if pty else self._spawn_pipes(argv)
        if timeout is not None and timeout > 0:
            self._timer = threading.Timer(timeout, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _spawn_pty(self, argv: list[str]) -> int:
        """Start the program on a terminal, its reader thread too; returns its pid."""
        import pexpect  # only sessions with a pty need it; importing the tools must not

        self._child = pexpect.spawn(
            argv[0], argv[1:], env=_HOST_ENV, echo=True, dimensions=(24, 120), timeout=None
        )
        self._start(self._read_pty)
        return int(self._child.pid)

    def _spawn_pipes(self, argv: list[str]) -> int:
        """Start the program on pipes, with a reader per stream and a reaper; returns its pid."""
        self._popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_HOST_ENV,
            start_new_session=True,
            bufsize=0,
        )
        assert self._popen.stdout is not None and self._popen.stderr is not None
        readers = [
            self._start(self._read_pipe, "stdout", self._popen.stdout.fileno()),
            self._start(self._read_pipe, "stderr", self._popen.stderr.fileno()),
        ]
        self._start(self._reap_pipes, readers)
        return self._popen.pid

    # -- threads ----------------------------------------------------------------------------
    def _start(self, target: Callable[..., None], *args: Any) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"proc-{self.name}")
        thread.start()
        self._threads.append(thread)
        return thread

    def _append(self, stream: ChunkStream, data: bytes) -> None:
        with self._cond:
            self._segments.append((stream, data))
            self._kept_bytes += len(data)
            while self._kept_bytes > self._log_cap and len(self._segments) > 1:
                _, old = self._segments.pop(0)
                self._kept_bytes -= len(old)
                self._dropped += 1
            self._cond.notify_all()

    def _read_pty(self) -> None:
        import pexpect

        child = self._child
        assert child is not None
        while True:
            try:
                data = child.read_nonblocking(65536, timeout=0.25)
            except pexpect.TIMEOUT:
                continue
            except (pexpect.EOF, OSError):
                break
            if data:
                self._append("stdout", data)
        child.close(force=True)
        self._finish(child.exitstatus, child.signalstatus)

    def _read_pipe(self, stream: ChunkStream, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._append(stream, data)

    def _reap_pipes(self, readers: list[threading.Thread]) -> None:
        popen = self._popen
        assert popen is not None
        for reader in readers:
            reader.join()
        code = popen.wait()
        for pipe in (popen.stdout, popen.stderr):
            if pipe is not None:
                pipe.close()
        self._finish(code if code >= 0 else None, -code if code < 0 else None)

    def _finish(self, exit_code: int | None, sig: int | None) -> None:
        with self._cond:
            self.exit_code = exit_code
            self.signal = sig
            self.ended = self._clock()
            self._done.set()
            self._cond.notify_all()
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        if not self._done.is_set():
            self.timed_out = True
            self._kill_group()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    # -- queries ----------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return not self._done.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Wait for the program to end; True when it has."""
        return self._done.wait(timeout)

    def wait_for_output(self, cursor: int, timeout: float) -> None:
        """Return when output past `cursor` exists, the program ended, or `timeout` passed."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._dropped + len(self._segments) > cursor or self._done.is_set(),
                timeout,
            )

    def read_from(self, cursor: int) -> tuple[int, list[Segment], bool]:
        """(new cursor, segments since `cursor`, True when some were dropped before reading)."""
        with self._cond:
            start = max(cursor - self._dropped, 0)
            gap = cursor < self._dropped
            return self._dropped + len(self._segments), self._segments[start:], gap

    def log_bytes(self) -> bytes:
        with self._cond:
            return b"".join(data for _, data in self._segments)

    def status(self) -> Literal["running", "completed", "failed"]:
        if self.running:
            return "running"
        return "completed" if self.exit_code is not None and not self.timed_out else "failed"

    def status_line(self) -> str:
        if self.running:
            return "Process still running."
        if self.timed_out:
            return "Process timed out and was killed."
        if self.killed:
            return "Process was killed."
        if self.exit_code is not None:
            return f"Process exited with code {self.exit_code}."
        return f"Process was terminated by signal {self.signal}."

    # -- actions ----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not self.running:
            raise ToolError(f"session {self.name} has already exited; nothing to write to")
        if not self._stdin_open:
            raise ToolError(f"session {self.name}: stdin was already closed (eof)")
        try:
            if self._child is not None:
                self._child.send(data)
            else:
                assert self._popen is not None and self._popen.stdin is not None
                self._popen.stdin.write(data)
                self._popen.stdin.flush()
        except OSError as e:
            raise ToolError(f"session {self.name}: write failed ({e.strerror or e})") from e

    def close_stdin(self) -> None:
        if not self._stdin_open or not self.running:
            return
        self._stdin_open = False
        if self._child is not None:
            # On a terminal, end of input is the EOF character, not a closed descriptor.
            self._child.sendeof()
        elif self._popen is not None and self._popen.stdin is not None:
            self._popen.stdin.close()

    def kill(self) -> None:
        if self.running:
            self.killed = True
            self._kill_group()

    def close(self, timeout: float = 5.0) -> None:
        """Kill if running and release threads and descriptors."""
        self.kill()
        self._done.wait(timeout)
        if self._timer is not None:
            self._timer.cancel()
        for thread in self._threads:
            thread.join(timeout)
        if self._popen is not None and self._popen.stdin is not None:
            with contextlib.suppress(OSError):
                self._popen.stdin.close()


@dataclass
class ProcessManager:
    """The background sessions of one tool runner (one agent session)."""

    sandbox: Sandbox
    name_factory: Callable[[], str]
    clock: Callable[[], float]
    log_cap: int = 1 << 20

    def __post_init__(self) -> None:
        self.sessions: dict[str, ProcessSession] = {}

    def spawn(
        self,
        command: str,
        *,
        pty: bool,
        env: Mapping[str, str] | None,
        workdir: str | None,
        timeout: float | None,
    ) -> ProcessSession:
        name = self.name_factory()
        argv = self.sandbox.interactive_argv(command, env=env, workdir=workdir)
        if self.sandbox.backend in _TERMINAL_ONLY_BACKENDS:
            pty = True
        session = ProcessSession(
            name,
            command,
            argv,
            pty=pty,
            cwd=workdir or self.sandbox.workspace_path,
            timeout=timeout,
            log_cap=self.log_cap,
            clock=self.clock,
        )
        self.sessions[name] = session
        return session

    def get(self, name: str) -> ProcessSession:
        session = self.sessions.get(name)
        if session is None:
            known = ", ".join(self.sessions) or "none"
            raise ToolError(f"no process session named {name!r} (sessions: {known})")
        return session

    def discard(self, name: str) -> None:
        session = self.sessions.pop(name, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        """Kill every session; idempotent."""
        for name in list(self.sessions):
            self.discard(name)


_KEYS: dict[str, bytes] = {
    "enter": b"\r",
    "return": b"\r",
    "tab": b"\t",
    "escape": b"\x1b",
    "esc": b"\x1b",
    "space": b" ",
    "backspace": b"\x7f",
    "bspace": b"\x7f",
    "delete": b"\x1b[3~",
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "right": b"\x1b[C",
    "left": b"\x1b[D",
    "home": b"\x1b[H",
    "end": b"\x1b[F",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "insert": b"\x1b[2~",
}


def key_bytes(key: str) -> bytes:
    """Bytes for a key name (Enter, Tab, Up, C-c, ^D...); anything else is sent literally,
    as tmux send-keys does."""
    lowered = key.lower()
    if lowered in _KEYS:
        return _KEYS[lowered]
    for prefix in ("c-", "ctrl-", "ctrl+", "^"):
        if lowered.startswith(prefix) and len(key) == len(prefix) + 1:
            char = lowered[-1]
            if "a" <= char <= "z" or char in "@[\\]^_":
                return bytes([ord(char.upper()) & 0x1F])
    if lowered.startswith(("m-", "alt-")) and len(key) == key.index("-") + 2:
        return b"\x1b" + key[-1].encode()
    return key.encode()
