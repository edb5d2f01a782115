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
from ise_es.sandbox.capture import BlobSink, StreamCapture

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
    assert proc.stdout is not None and proc.stderr is not None
    caps = {
        "stdout": StreamCapture(limits.output_head_bytes, limits.blob_cap_bytes),
        "stderr": StreamCapture(limits.output_head_bytes, limits.blob_cap_bytes),
    }
    sel = selectors.DefaultSelector()
    names: dict[int, Literal["stdout", "stderr"]] = {}
    for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        fd = pipe.fileno()
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
        names[fd] = name  # type: ignore[assignment]
    pending = memoryview(stdin or b"")
    stdin_fd = -1
    if proc.stdin is not None:
        if pending:
            stdin_fd = proc.stdin.fileno()
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
        else:
            proc.stdin.close()
    deadline = started + timeout
    timed_out = False
    try:
        while sel.get_map():
            now = time.monotonic()
            if not timed_out and now >= deadline:
                timed_out = True
                kill()
                deadline = now + _DRAIN_AFTER_KILL_S
            elif timed_out and now >= deadline:
                break  # something outside the tree holds a pipe; stop waiting for it
            for key, _ in sel.select(max(0.0, deadline - now)):
                fd = int(key.fd)
                if fd == stdin_fd:
                    try:
                        n = os.write(fd, pending[: 1 << 16])
                    except BrokenPipeError:
                        n = len(pending)
                    pending = pending[n:]
                    if not pending:
                        sel.unregister(fd)
                        stdin_fd = -1
                        if proc.stdin is not None:
                            proc.stdin.close()
                    continue
                data = os.read(fd, _READ)
                if not data:
                    sel.unregister(fd)
                    continue
                name = names[fd]
                caps[name].feed(data)
                if on_chunk is not None:
                    on_chunk(name, data)
    except BaseException:
        kill()
        raise
    finally:
        sel.close()
        for p in (proc.stdin, proc.stdout, proc.stderr):
            if p is not None and not p.closed:
                p.close()
    try:
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()) if timed_out else None)
    except subprocess.TimeoutExpired:
        kill()
        code = proc.wait()
    duration_ms = (time.monotonic() - started) * 1000.0
    out, err = caps["stdout"], caps["stderr"]
    out.finish(blobs)
    err.finish(blobs)
    exit_code: int | None = code
    signal: int | None = None
    if timed_out:
        exit_code, signal = None, 9
    elif code < 0:
        exit_code, signal = None, -code
    return ExecResult(
        exit_code=exit_code,
        signal=signal,
        timed_out=timed_out,
        duration_ms=round(duration_ms, 3),
        stdout=out.kept(),
        stderr=err.kept(),
        stdout_size=out.size,
        stderr_size=err.size,
        stdout_digest=out.digest(),
        stderr_digest=err.digest(),
        truncated=out.truncated or err.truncated,
    )
