"""The Sandbox protocol: an isolated workspace where tool calls run for real.

Every backend (`local` = bubblewrap over an overlayfs workspace, `docker`) implements `Sandbox`
and passes the same conformance suite (tests/sandbox/). "The sandbox cannot start"
(`SandboxUnavailable`) is a different error from "the command failed" (a non-zero `exit_code`
in `ExecResult`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Literal

import msgspec

from ise_es.events import FileChange

__all__ = [
    "ChunkCallback",
    "ExecResult",
    "Limits",
    "Sandbox",
    "Snapshot",
]

ChunkCallback = Callable[[Literal["stdout", "stderr"], bytes], None]
"""Called with each piece of output as it arrives, in arrival order."""


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """Resource limits applied to every command in a sandbox."""

    memory_bytes: int = 1 << 30
    processes: int = 256
    file_size_bytes: int = 1 << 30
    open_files: int = 1024
    default_timeout_s: float = 120.0
    output_head_bytes: int = 256 * 1024
    """Output kept verbatim (as chunks) per stream; the full output goes to a blob."""
    blob_cap_bytes: int = 64 << 20
    """Outputs and new file contents larger than this are recorded by digest and size only."""


class ExecResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a command ended."""

    exit_code: int | None
    """None when killed by a signal or timed out."""
    signal: int | None = None
    timed_out: bool = False
    duration_ms: float = 0.0
    stdout: bytes = b""
    """The head of stdout (up to Limits.output_head_bytes) plus the tail when truncated."""
    stderr: bytes = b""
    stdout_size: int = 0
    stderr_size: int = 0
    stdout_digest: str | None = None
    """sha256 of the full stdout (in the blob store when not larger than the cap)."""
    stderr_digest: str | None = None
    truncated: bool = False


class Snapshot(msgspec.Struct, frozen=True):
    """An opaque marker of the workspace state, for `Sandbox.diff`."""

    token: str


class Sandbox(abc.ABC):
    """One isolated workspace restored from a template, plus a way to run commands in it.

    Paths given to `read_file`/`write_file` are relative to the workspace root; a path that
    escapes it raises `ToolError`.
    """

    backend: str
    template: str
    template_digest: str
    workspace_path: str
    """The workspace as a command inside the sandbox sees it (its cwd), e.g. /tmp/workspace."""

    @abc.abstractmethod
    def exec(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        workdir: str | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> ExecResult:
        """Run a command (a string runs under `bash -lc`), streaming output to `on_chunk`.

        On timeout the whole process tree is killed and `timed_out` is set. An argv whose
        program is not found exits 127, one that cannot be run 126, as in a shell (see
        `ise_es.sandbox.launch`). `workdir` is relative to the workspace or absolute; one
        outside the workspace that does not exist exits 125 with the reason on stderr.

        What a command leaves anywhere it may write (the workspace, which is also HOME, /tmp,
        /var/tmp, /dev/shm) is there for the next command until `close`.

        Raises:
            SandboxUnavailable: the sandbox is closed or its backend died.
        """

    @abc.abstractmethod
    def interactive_argv(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> list[str]:
        """A host command line that runs `command` inside this sandbox attached to the caller's
        terminal, so that the `process` tool can drive it on a pty with pexpect. The process gets
        the same isolation and limits as `exec`; the caller owns its lifetime."""

    @abc.abstractmethod
    def read_file(self, path: str) -> bytes:
        """Raises: ToolError (escapes the workspace), FileNotFoundError."""

    @abc.abstractmethod
    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        """Create parent directories as needed. Raises: ToolError (escapes the workspace)."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        """Mark the current workspace state."""

    @abc.abstractmethod
    def diff(self, since: Snapshot) -> list[FileChange]:
        """What changed in the workspace since `since`, sorted by path; cost follows the number
        of changes.

        The workspace only, on every backend: /tmp, /var/tmp and /dev/shm persist too but are
        scratch space (downloads, build trees, caches), not the session's work, and are not
        part of the template a replay starts from. Dotfiles written to HOME are in the diff,
        HOME being the workspace."""

    @abc.abstractmethod
    def kill_running(self) -> None:
        """Kill every command running in the sandbox now; callable from any thread. A Ctrl-C
        or a lost lease must not wait for a tool to finish: the commands in flight return as
        killed (signal 9). The sandbox stays open until `close`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free everything the sandbox used (processes, mounts, directories, containers).
        Idempotent."""

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
