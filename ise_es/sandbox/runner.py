"""Running one host process to completion with streamed, bounded output capture.

Shared by the backends that drive a local child process (bubblewrap). Output is read with a
selector as it arrives, handed to the chunk callback in arrival order (order per stream is
exact; order across the two streams is the order the pipes became readable), and fed to a
`StreamCapture` per stream. On timeout `kill` is called, which must take the whole process tree
down; the pipes are then drained until every writer is gone.
"""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from typing import Literal

from ise_es.sandbox.base import ChunkCallback, ExecResult, Limits
from ise_es.sandbox.capture import BlobSink, StreamCapture, captured_result

__all__ = ["pump"]

_READ = 1 << 16
_DRAIN_AFTER_KILL_S = 2.0


def pump(
    proc: subprocess.Popen[bytes],
    *,
    stdin: bytes | None,
    timeout: float,
    limits: Limits,
    blobs: BlobSink | None,
    on_chunk: ChunkCallback | None,
    kill: Callable[[], None],
    started: float,
) -> ExecResult:
    """Feed stdin, stream stdout/stderr, enforce the wall-clock timeout, wait for the exit."""
    caps = {
        "stdout": StreamCapture(limits.output_head_bytes, limits.blob_cap_bytes),
        "stderr": StreamCapture(limits.output_head_bytes, limits.blob_cap_bytes),
    }
    pipes = _Pipes(proc, stdin, caps, on_chunk)
    try:
        timed_out, deadline = _drain(pipes, started + timeout, kill)
    except BaseException:
        kill()
        raise
    finally:
        pipes.close()
    code = _wait_exit(proc, kill, timed_out, deadline)
    exit_code: int | None = code
    signal: int | None = None
    if timed_out:
        exit_code, signal = None, 9
    elif code < 0:
        exit_code, signal = None, -code
    return captured_result(
        caps["stdout"],
        caps["stderr"],
        blobs,
        exit_code=exit_code,
        signal=signal,
        timed_out=timed_out,
        started=started,
    )


def _drain(pipes: _Pipes, deadline: float, kill: Callable[[], None]) -> tuple[bool, float]:
    """Serve the pipes until every writer has closed them. At the deadline the process tree is
    killed and the pipes drained for a grace period more. Returns (timed out, last deadline)."""
    timed_out = False
    while pipes.open():
        now = time.monotonic()
        if not timed_out and now >= deadline:
            timed_out = True
            kill()
            deadline = now + _DRAIN_AFTER_KILL_S
        elif timed_out and now >= deadline:
            break  # something outside the tree holds a pipe; stop waiting for it
        pipes.serve(max(0.0, deadline - now))
    return timed_out, deadline


def _wait_exit(
    proc: subprocess.Popen[bytes], kill: Callable[[], None], timed_out: bool, deadline: float
) -> int:
    """The exit code; a killed process gets until the drain deadline to go, then a second kill."""
    try:
        return proc.wait(timeout=max(0.1, deadline - time.monotonic()) if timed_out else None)
    except subprocess.TimeoutExpired:
        kill()
        return proc.wait()


class _Pipes:
    """A child's pipes on one selector: stdin written from a buffer as it can take it, stdout
    and stderr read into their captures (and the chunk callback) as they become readable."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        stdin: bytes | None,
        caps: dict[str, StreamCapture],
        on_chunk: ChunkCallback | None,
    ) -> None:
        assert proc.stdout is not None and proc.stderr is not None
        self._proc, self._caps, self._on_chunk = proc, caps, on_chunk
        self._sel = selectors.DefaultSelector()
        self._names: dict[int, Literal["stdout", "stderr"]] = {}
        for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            self._sel.register(fd, selectors.EVENT_READ)
            self._names[fd] = name  # type: ignore[assignment]
        self._pending = memoryview(stdin or b"")
        self._stdin_fd = -1
        if proc.stdin is not None:
            if self._pending:
                self._stdin_fd = proc.stdin.fileno()
                os.set_blocking(self._stdin_fd, False)
                self._sel.register(self._stdin_fd, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()

    def open(self) -> bool:
        """Whether a pipe is still registered (not at EOF, stdin not fully written)."""
        return bool(self._sel.get_map())

    def serve(self, wait: float) -> None:
        """Wait up to `wait` seconds for the pipes, then write or read what is ready."""
        for key, _ in self._sel.select(wait):
            fd = int(key.fd)
            if fd == self._stdin_fd:
                self._write_stdin()
            else:
                self._read(fd)

    def _write_stdin(self) -> None:
        try:
            n = os.write(self._stdin_fd, self._pending[:_READ])
        except BrokenPipeError:
            n = len(self._pending)  # the command stopped reading
        self._pending = self._pending[n:]
        if not self._pending:
            self._sel.unregister(self._stdin_fd)
            self._stdin_fd = -1
            if self._proc.stdin is not None:
                self._proc.stdin.close()

    def _read(self, fd: int) -> None:
        data = os.read(fd, _READ)
        if not data:
            self._sel.unregister(fd)
            return
        name = self._names[fd]
        self._caps[name].feed(data)
        if self._on_chunk is not None:
            self._on_chunk(name, data)

    def close(self) -> None:
        self._sel.close()
        for p in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if p is not None and not p.closed:
                p.close()
