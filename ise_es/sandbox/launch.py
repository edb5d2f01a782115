"""How a command starts inside a sandbox, the same way on every backend.

The runtimes fail differently when they cannot start a program: bubblewrap's execvp error is
exit 1 with "bwrap: execvp ...", `docker exec` is exit 126 with an "OCI runtime exec failed"
line on stdout, for a missing program and a non-executable file alike, and both fail that way
for a working directory that does not exist. Neither is what a machine shows the agent, and
local and docker recordings of one session would differ. So a command given as an argv runs
through coreutils' `env` (present on both: the host's /usr and the Debian image), which starts
the program itself and fails like a shell and POSIX utilities do: 127 when the program is not
found, 126 when it is found but cannot be run, with the reason on stderr. A working directory
outside the workspace is entered by `env -C` too (the runtime starts in the workspace), so a
missing one fails with env's message and exit 125 on both backends; missing directories inside
the workspace are refused before anything runs (`ToolError`), as before.

A string command runs under `bash -lc` and already fails like a shell; it is wrapped only when
it runs outside the workspace. `env` replaces itself with the program (exec), so the process
tree, the environment and signals are those of the program alone.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping

from ise_es.errors import ToolError
from ise_es.sandbox.paths import resolve_host_path

__all__ = ["ENV", "check_environment", "in_workspace", "launch_argv", "sandbox_workdir"]

ENV = "/usr/bin/env"


def in_workspace(path: str, workspace: str) -> bool:
    """True for `workspace` itself and everything lexically below it."""
    return path == workspace or path.startswith(workspace + "/")


def launch_argv(command: str | list[str], cwd: str, workspace: str) -> tuple[str, list[str]]:
    """(the directory the runtime starts in, the argv it runs) for `command` in `cwd`.

    Args:
        cwd: the absolute, normalised working directory inside the sandbox.

    Raises:
        ToolError: an empty argv.
    """
    argv = ["/bin/bash", "-lc", command] if isinstance(command, str) else list(command)
    if not argv:
        raise ToolError("empty command")
    outside = not in_workspace(posixpath.normpath(cwd), workspace)
    # env would read a first word holding '=' as a variable to set, not as the program.
    if "=" in argv[0] or not (outside or isinstance(command, list)):
        return cwd, argv
    if outside:
        return workspace, [ENV, "-C", cwd, "--", *argv]
    return cwd, [ENV, "--", *argv]


def sandbox_workdir(workdir: str | None, workspace: str, host_root: str) -> str:
    """The absolute, normalised working directory inside the sandbox for a command's `workdir`
    (relative ones are taken from the workspace; None is the workspace).

    Raises:
        ToolError: a directory inside the workspace that does not exist (`host_root` is where
            the workspace lies on the host); one outside it is left to `env -C` to refuse.
    """
    if workdir is None:
        return workspace
    inside = posixpath.normpath(posixpath.join(workspace, workdir))
    if in_workspace(inside, workspace) and not os.path.isdir(
        resolve_host_path(inside, workspace, host_root)
    ):
        raise ToolError(f"workdir {workdir!r} is not a directory in the workspace")
    return inside


def check_environment(env: Mapping[str, str]) -> None:
    """Raises ToolError for a variable no process environment can hold."""
    for k, v in env.items():
        if not k or "=" in k or "\0" in k or "\0" in v:
            raise ToolError(f"invalid environment variable {k!r}")
