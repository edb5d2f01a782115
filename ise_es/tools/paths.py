"""Workspace path checks for the file tools.

The agent names files relative to its cwd (the workspace) or absolutely as the sandbox sees
them (`/tmp/workspace/notes.md`). Both are reduced here to a '/'-separated path relative to the
workspace root, or refused. This is the lexical half of the check (`..`, absolute paths
elsewhere); symlinks that point out of the workspace can only be seen on the filesystem, so the
sandbox's `read_file`/`write_file` refuse those (they raise `ToolError`, which the runner turns
into a tool error result like this module's).
"""

from __future__ import annotations

import posixpath

from ise_es.errors import ToolError

__all__ = ["PathEscape", "to_workspace_relative"]


class PathEscape(ToolError):
    """A path names something outside the workspace."""


def to_workspace_relative(path: str, workspace: str) -> str:
    """Map an agent-supplied path to one relative to the workspace root.

    Raises:
        PathEscape: the path is empty, contains NUL, starts with `~`, is absolute outside the
            workspace, or climbs out of it with `..`.
    """
    if not path:
        raise PathEscape("path must not be empty")
    if "\x00" in path:
        raise PathEscape("path must not contain NUL bytes")
    if path == "~" or path.startswith("~/"):
        raise PathEscape(
            f"{path}: '~' is not expanded here; give a path relative to the workspace ({workspace})"
        )
    root = posixpath.normpath(workspace)
    if posixpath.isabs(path):
        full = posixpath.normpath(path)
        if full == root:
            return "."
        if not full.startswith(root.rstrip("/") + "/"):
            raise PathEscape(f"{path}: outside the workspace ({workspace})")
        return full[len(root.rstrip("/")) + 1 :]
    relative = posixpath.normpath(path)
    if relative == ".." or relative.startswith("../"):
        raise PathEscape(f"{path}: escapes the workspace ({workspace})")
    return relative
