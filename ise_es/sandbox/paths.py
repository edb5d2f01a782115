"""Mapping a workspace path (as a command inside the sandbox would name it) to a host path,
refusing every way out of the workspace: `..`, absolute paths elsewhere, and symlinks whose
target leaves it. Symlinks are resolved here, by hand, because the host would resolve an
absolute link target against the host's root, not the sandbox's.
"""

from __future__ import annotations

import os
import posixpath
import stat

from ise_es.errors import ToolError

__all__ = ["read_workspace_file", "resolve_host_path", "workspace_relative", "write_workspace_file"]

_MAX_LINKS = 40


def workspace_relative(path: str, workspace: str) -> list[str]:
    """Components of `path` below `workspace`, lexically (no symlinks followed).

    Raises:
        ToolError: the path is empty, or lexically outside the workspace.
    """
    if not path or "\0" in path:
        raise ToolError(f"invalid path {path!r}")
    joined = path if path.startswith("/") else posixpath.join(workspace, path)
    norm = posixpath.normpath(joined)
    if norm == workspace:
        return []
    if not norm.startswith(workspace + "/"):
        raise ToolError(f"path {path!r} is outside the workspace {workspace}")
    return norm[len(workspace) + 1 :].split("/")


def resolve_host_path(
    path: str, workspace: str, host_root: str, *, follow_last: bool = True
) -> str:
    """The host path of `path`, with every symlink resolved inside the workspace.

    Args:
        workspace: the workspace as the sandbox sees it (e.g. /tmp/workspace).
        host_root: the same directory as the host sees it.
        follow_last: resolve a symlink in the last component too (False for lstat-like use).

    Raises:
        ToolError: the path, or a symlink on the way, leads outside the workspace.
    """
    todo = workspace_relative(path, workspace)
    todo.reverse()
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if not done:
                raise ToolError(f"path {path!r} leads outside the workspace {workspace}")
            done.pop()
            continue
        host = os.path.join(host_root, *done, part)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            done.append(part)
            continue  # the rest does not exist yet: nothing more to follow
        if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
            links += 1
            if links > _MAX_LINKS:
                raise ToolError(f"path {path!r}: too many levels of symbolic links")
            target = os.readlink(host)
            if target.startswith("/"):
                rest = workspace_relative_or_none(target, workspace)
                if rest is None:
                    raise ToolError(
                        f"path {path!r} is a symlink to {target!r}, outside the workspace"
                    )
                done = []
                todo.extend(reversed(rest))
            else:
                todo.extend(reversed(target.split("/")))
            continue
        done.append(part)
    return os.path.join(host_root, *done)


def workspace_relative_or_none(path: str, workspace: str) -> list[str] | None:
    try:
        return workspace_relative(path, workspace)
    except ToolError:
        return None


def read_workspace_file(path: str, workspace: str, host_root: str) -> bytes:
    """Raises: ToolError (escapes the workspace, or a directory), FileNotFoundError."""
    host = resolve_host_path(path, workspace, host_root)
    if os.path.isdir(host):
        raise ToolError(f"{path!r} is a directory")
    with open(host, "rb") as f:
        return f.read()


def write_workspace_file(
    path: str,
    data: bytes,
    workspace: str,
    host_root: str,
    *,
    mode: int | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """Write a file (creating parents) as the sandbox user would; an existing file keeps its
    mode unless `mode` is given. `owner` is chowned onto what is created (None: leave as is).

    Raises: ToolError (escapes the workspace, a directory, a parent that is a file).
    """
    host = resolve_host_path(path, workspace, host_root)
    if host == host_root or os.path.isdir(host):
        raise ToolError(f"{path!r} is a directory")
    missing = []
    parent = os.path.dirname(host)
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ToolError(f"cannot create {path!r}: a parent is not a directory")
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        if owner is not None:
            os.chown(d, *owner)
    existed = os.path.lexists(host)
    fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        if owner is not None and not existed:
            os.fchown(f.fileno(), *owner)
        if mode is not None:
            os.fchmod(f.fileno(), mode & 0o7777)
