"""The file tools: `read`, `write`, `edit`, `apply_patch`.

Every path goes through `to_workspace_relative` first (lexical escapes) and then through the
sandbox's `read_file`/`write_file` (which refuse symlinks leading out). Errors come back as
`ToolError` with a message the agent can act on.
"""

from __future__ import annotations

from typing import Any

from ise_es.errors import ToolError
from ise_es.sandbox.base import Sandbox
from ise_es.tools.base import Tool, ToolContext, ToolOutcome
from ise_es.tools.patch import PatchError, apply_file_patch, parse_patch
from ise_es.tools.paths import to_workspace_relative
from ise_es.tools.schema import ArgumentError

__all__ = ["APPLY_PATCH", "EDIT", "READ", "WRITE", "read_text", "workspace_path"]

READ_DEFAULT_LINES = 2000
READ_MAX_BYTES = 50 * 1024


def workspace_path(ctx: ToolContext, path: str) -> str:
    return to_workspace_relative(path, ctx.sandbox.workspace_path)


def read_bytes(sandbox: Sandbox, relative: str, shown: str) -> bytes:
    """Read a workspace file, mapping OS errors to messages the agent can act on."""
    try:
        return sandbox.read_file(relative)
    except FileNotFoundError as e:
        raise ToolError(f"File not found: {shown}") from e
    except IsADirectoryError as e:
        raise ToolError(f"{shown} is a directory, not a file (use exec with ls to list it)") from e
    except PermissionError as e:
        raise ToolError(f"Permission denied: {shown}") from e
    except NotADirectoryError as e:
        raise ToolError(f"File not found: {shown} (a parent is not a directory)") from e


def read_text(sandbox: Sandbox, relative: str, shown: str) -> str:
    data = read_bytes(sandbox, relative, shown)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ToolError(
            f"{shown} is not UTF-8 text ({len(data)} bytes); inspect it with exec "
            "(e.g. file, xxd, head -c)"
        ) from e


def write_bytes(sandbox: Sandbox, relative: str, shown: str, data: bytes) -> None:
    try:
        sandbox.write_file(relative, data)
    except IsADirectoryError as e:
        raise ToolError(f"{shown} is a directory; cannot write it as a file") from e
    except PermissionError as e:
        raise ToolError(f"Permission denied: {shown}") from e
    except (NotADirectoryError, FileExistsError) as e:
        raise ToolError(f"Cannot create {shown}: a parent path is a file") from e


# ---------------------------------------------------------------------------------------------


def run_read(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    shown: str = args["path"]
    relative = workspace_path(ctx, shown)
    text = read_text(ctx.sandbox, relative, shown)
    lines = text.splitlines(keepends=True)
    offset: int = args.get("offset") or 1
    limit: int | None = args.get("limit")
    total = len(lines)
    if total == 0:
        return ToolOutcome(text="(empty file)", details={"path": shown, "lines": 0})
    if offset > total:
        raise ArgumentError(
            f"argument 'offset' ({offset}) is beyond the end of {shown} ({total} lines)"
        )
    end = min(total, offset - 1 + (limit if limit is not None else READ_DEFAULT_LINES))
    chosen: list[str] = []
    size = 0
    for line in lines[offset - 1 : end]:
        size += len(line.encode())
        if size > READ_MAX_BYTES and chosen:
            break
        chosen.append(line)
    last = offset - 1 + len(chosen)
    body = "".join(chosen)
    if last < total:
        body = body.rstrip("\n") + (
            f"\n\n[Showing lines {offset}-{last} of {total}. Use offset={last + 1} to continue.]"
        )
    return ToolOutcome(
        text=body, details={"path": shown, "lines": total, "from": offset, "to": last}
    )


def run_write(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    shown: str = args["path"]
    relative = workspace_path(ctx, shown)
    data = args["content"].encode()
    write_bytes(ctx.sandbox, relative, shown, data)
    return ToolOutcome(
        text=f"Successfully wrote {len(data)} bytes to {shown}",
        details={"path": shown, "bytes": len(data)},
    )


def run_edit(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    shown: str = args["path"]
    old: str = args["oldText"]
    new: str = args["newText"]
    if not old:
        raise ArgumentError("argument 'oldText' must not be empty (use write to create a file)")
    relative = workspace_path(ctx, shown)
    text = read_text(ctx.sandbox, relative, shown)
    count = text.count(old)
    if count == 0:
        raise ToolError(
            f"Could not find oldText in {shown}. It must match the file exactly, including "
            "whitespace, indentation and line breaks; read the file and copy the text."
        )
    if count > 1:
        raise ToolError(
            f"oldText occurs {count} times in {shown}; it must occur exactly once. Include more "
            "of the surrounding lines so it is unique."
        )
    at = text.index(old)
    updated = text[:at] + new + text[at + len(old) :]
    write_bytes(ctx.sandbox, relative, shown, updated.encode())
    line = text.count("\n", 0, at) + 1
    return ToolOutcome(
        text=f"Successfully replaced text in {shown}.",
        details={"path": shown, "firstChangedLine": line},
    )


def run_apply_patch(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    patches = parse_patch(args["input"])
    planned: list[tuple[str, str, str, str | None]] = []
    """(mark A/M/D, shown path, workspace-relative path, new content or None to delete)"""
    seen: set[str] = set()
    for patch in patches:
        shown = patch.path
        relative = workspace_path(ctx, shown)
        if relative in seen:
            raise PatchError(f"{shown}: patched twice in one patch; merge its hunks")
        seen.add(relative)
        if (
            patch.old_path is not None
            and patch.new_path is not None
            and (patch.old_path != patch.new_path)
        ):
            raise PatchError(f"{patch.old_path} -> {patch.new_path}: renames are not supported")
        try:
            old: str | None = read_text(ctx.sandbox, relative, shown)
        except ToolError:
            if patch.old_path is not None:
                raise
            old = None
        new = apply_file_patch(patch, old)
        mark = "A" if old is None else ("D" if new is None else "M")
        planned.append((mark, shown, relative, new))
    # Every hunk applied in memory: only now touch the workspace.
    for _, shown, relative, new in planned:
        if new is None:
            _delete(ctx.sandbox, relative, shown)
        else:
            write_bytes(ctx.sandbox, relative, shown, new.encode())
    summary = "\n".join(f"{mark} {shown}" for mark, shown, _, _ in planned)
    return ToolOutcome(
        text=f"Patch applied. Changed files:\n{summary}",
        details={"files": [{"path": s, "change": m} for m, s, _, _ in planned]},
    )


def _delete(sandbox: Sandbox, relative: str, shown: str) -> None:
    # The Sandbox protocol has no remove_file; `rm` inside the sandbox keeps the deletion under
    # the sandbox's own isolation (and a symlink is removed, never followed).
    result = sandbox.exec(["rm", "-f", "--", relative], timeout=30)
    if result.exit_code != 0:
        message = result.stderr.decode("utf-8", errors="replace").strip()
        raise ToolError(f"could not delete {shown}: {message or 'rm failed'}")


READ = Tool(
    name="read",
    description=(
        "Read a text file from the workspace. Long files are returned in pages: use offset "
        "(1-based line) and limit (lines) to continue."
    ),
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File path (relative to the workspace)."},
            "offset": {"type": "integer", "minimum": 1, "description": "First line (1-based)."},
            "limit": {"type": "integer", "minimum": 1, "description": "Maximum lines to read."},
        },
        "required": ["path"],
        "additionalProperties": False,
    },
    execute=run_read,
    changes_files=False,
)

WRITE = Tool(
    name="write",
    description="Create or overwrite a file with the given content (parent folders are created).",
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File path (relative to the workspace)."},
            "content": {"type": "string", "description": "The complete new content."},
        },
        "required": ["path", "content"],
        "additionalProperties": False,
    },
    execute=run_write,
)

EDIT = Tool(
    name="edit",
    description=(
        "Replace one exact occurrence of oldText with newText in a file. oldText must match "
        "the file exactly (whitespace included) and occur exactly once."
    ),
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "File path (relative to the workspace)."},
            "oldText": {"type": "string", "description": "Exact text to replace."},
            "newText": {"type": "string", "description": "Replacement text."},
        },
        "required": ["path", "oldText", "newText"],
        "additionalProperties": False,
    },
    execute=run_edit,
)

APPLY_PATCH = Tool(
    name="apply_patch",
    description=(
        "Apply a unified diff (as produced by `diff -u` or `git diff`) to files in the "
        "workspace. Use --- /dev/null to create a file and +++ /dev/null to delete one. "
        "Nothing is changed unless every hunk applies."
    ),
    parameters={
        "type": "object",
        "properties": {
            "input": {"type": "string", "description": "The patch text (unified diff)."},
        },
        "required": ["input"],
        "additionalProperties": False,
    },
    execute=run_apply_patch,
)
