"""A small unified-diff parser and applier for the `apply_patch` tool.

Accepts what `diff -u` and `git diff` produce: one or more file sections (`--- a/x`, `+++ b/x`,
optional `diff --git` / `index` / mode lines before them), `/dev/null` for created and deleted
files, hunks `@@ -l,s +l,s @@`, and `\\ No newline at end of file`. A hunk is applied where its
header says, or, when the file has moved on, at the nearest position where its context and
removed lines match exactly (like `patch` with zero fuzz). Nothing is written unless every hunk
of every file applies, so a failed patch leaves the workspace as it was.

This module is pure: it turns (patch text, old file contents) into new file contents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ise_es.errors import ToolError

__all__ = [
    "FilePatch",
    "Hunk",
    "PatchError",
    "apply_file_patch",
    "parse_patch",
]


class PatchError(ToolError):
    """A patch does not parse, or a hunk does not apply."""


_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_NO_NEWLINE = "\\ No newline at end of file"


@dataclass
class Hunk:
    old_start: int
    old_count: int
    new_start: int
    new_count: int
    header: str
    lines: list[tuple[str, str]] = field(default_factory=list)
    """(' ' | '-' | '+', text without the newline)."""
    old_eof_newline: bool = True
    """False when the old side's last line has no trailing newline."""
    new_eof_newline: bool = True

    @property
    def old_lines(self) -> list[str]:
        return [text for op, text in self.lines if op in " -"]

    @property
    def new_lines(self) -> list[str]:
        return [text for op, text in self.lines if op in " +"]


@dataclass
class FilePatch:
    old_path: str | None
    """None for a created file (`--- /dev/null`)."""
    new_path: str | None
    """None for a deleted file (`+++ /dev/null`)."""
    hunks: list[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        path = self.new_path if self.new_path is not None else self.old_path
        assert path is not None
        return path


def _strip_prefix(raw: str) -> str | None:
    name = raw.split("\t", 1)[0].strip()
    if name == "/dev/null":
        return None
    if name.startswith('"') and name.endswith('"') and len(name) >= 2:
        name = name[1:-1]
    if name.startswith(("a/", "b/")):
        name = name[2:]
    return name


def parse_patch(text: str) -> list[FilePatch]:
    """Parse a unified diff into file patches.

    Raises:
        PatchError: naming the line of the patch that is wrong.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    patches: list[FilePatch] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("--- "):
            # Preamble (diff --git, index, mode lines, prose) is skipped, but a hunk with no
            # file header is an error the agent should hear about.
            if line.startswith("@@"):
                raise PatchError(f"patch line {i + 1}: hunk before any '--- '/'+++ ' file header")
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            raise PatchError(f"patch line {i + 2}: expected '+++ ' after '--- ' header")
        current = FilePatch(_strip_prefix(line[4:]), _strip_prefix(lines[i + 1][4:]))
        if current.old_path is None and current.new_path is None:
            raise PatchError(f"patch line {i + 1}: both sides are /dev/null")
        i += 2
        while i < len(lines) and lines[i].startswith("@@"):
            hunk, i = _parse_hunk(lines, i)
            current.hunks.append(hunk)
        if not current.hunks:
            raise PatchError(f"patch line {i + 1}: file {current.path} has no hunks")
        patches.append(current)
    if not patches:
        raise PatchError("no file sections found (expected '--- a/PATH' and '+++ b/PATH' lines)")
    return patches


def _parse_hunk(lines: list[str], i: int) -> tuple[Hunk, int]:
    match = _HUNK_RE.match(lines[i])
    if match is None:
        raise PatchError(f"patch line {i + 1}: malformed hunk header {lines[i]!r}")
    old_start, old_count, new_start, new_count = (
        int(match.group(1)),
        int(match.group(2) if match.group(2) is not None else 1),
        int(match.group(3)),
        int(match.group(4) if match.group(4) is not None else 1),
    )
    hunk = Hunk(old_start, old_count, new_start, new_count, lines[i])
    header_line = i + 1
    i += 1
    seen_old = seen_new = 0
    while i < len(lines) and (seen_old < old_count or seen_new < new_count):
        line = lines[i]
        if line == _NO_NEWLINE:
            _mark_no_newline(hunk, i)
            i += 1
            continue
        op, body = (line[0], line[1:]) if line else (" ", "")
        if op not in " -+":
            raise PatchError(
                f"patch line {i + 1}: expected a ' ', '-' or '+' line in the hunk starting at "
                f"line {header_line} ({seen_old} of {old_count} old and {seen_new} of "
                f"{new_count} new lines seen)"
            )
        hunk.lines.append((op, body))
        seen_old += op in " -"
        seen_new += op in " +"
        i += 1
    if seen_old != old_count or seen_new != new_count:
        raise PatchError(
            f"patch line {header_line}: hunk {hunk.header!r} promises {old_count} old and "
            f"{new_count} new lines but has {seen_old} and {seen_new}"
        )
    if i < len(lines) and lines[i] == _NO_NEWLINE:
        _mark_no_newline(hunk, i)
        i += 1
    return hunk, i


def _mark_no_newline(hunk: Hunk, index: int) -> None:
    if not hunk.lines:
        raise PatchError(f"patch line {index + 1}: '{_NO_NEWLINE}' with no line before it")
    op = hunk.lines[-1][0]
    if op in " -":
        hunk.old_eof_newline = False
    if op in " +":
        hunk.new_eof_newline = False


def _split(content: str) -> tuple[list[str], bool]:
    """Lines without terminators, and whether the content ends with a newline."""
    if content == "":
        return [], True
    ends = content.endswith("\n")
    body = content[:-1] if ends else content
    return body.split("\n"), ends


def _find(lines: list[str], wanted: list[str], hint: int) -> int | None:
    """The position nearest to `hint` where `wanted` occurs in `lines`."""
    limit = len(lines) - len(wanted)
    for distance in range(max(hint, limit - hint, 0) + 1):
        for pos in (hint - distance, hint + distance):
            if 0 <= pos <= limit and lines[pos : pos + len(wanted)] == wanted:
                return pos
    return None


def apply_file_patch(patch: FilePatch, old: str | None) -> str | None:
    """Apply one file's hunks to its old content (None: the file does not exist).

    Returns the new content, or None when the patch deletes the file.

    Raises:
        PatchError: the file is missing/present against the patch, or a hunk does not apply.
    """
    name = patch.path
    if patch.old_path is None and old is not None:
        raise PatchError(f"{name}: patch creates the file but it already exists")
    if patch.old_path is not None and old is None:
        raise PatchError(f"{name}: file not found")
    # Lines keep any '\r' so CRLF files round-trip; only '\n' splits.
    lines, ends_with_newline = _split(old or "")
    offset = 0
    cursor = 0
    for number, hunk in enumerate(patch.hunks, 1):
        wanted = hunk.old_lines
        # Line numbers are 1-based; a pure insertion (-N,0) goes after old line N.
        hint = (hunk.old_start - 1 if hunk.old_count else hunk.old_start) + offset
        pos = _find(lines, wanted, max(0, min(hint, len(lines))))
        if pos is None or pos < cursor:
            raise PatchError(_mismatch(name, number, hunk, lines, hint))
        lines[pos : pos + len(wanted)] = hunk.new_lines
        offset += len(hunk.new_lines) - len(wanted)
        cursor = pos + len(hunk.new_lines)
        if cursor == len(lines):
            # The hunk reaches the end of the file, so its last new line is the file's last
            # line and only its "\ No newline" marker decides the trailing newline.
            ends_with_newline = hunk.new_eof_newline
    if patch.new_path is None:
        if lines:
            raise PatchError(f"{name}: patch deletes the file but lines would remain")
        return None
    if not lines:
        return ""
    return "\n".join(lines) + ("\n" if ends_with_newline else "")


def _mismatch(name: str, number: int, hunk: Hunk, lines: list[str], hint: int) -> str:
    wanted = hunk.old_lines
    where = f"{name}: hunk {number} ({hunk.header.split(' @@')[0]} @@) does not apply"
    for k, expected in enumerate(wanted):
        at = hint + k
        if at >= len(lines):
            return (
                f"{where}: the file has only {len(lines)} lines, expected {expected!r} "
                f"at line {at + 1}"
            )
        if lines[at] != expected:
            return f"{where}: line {at + 1} is {lines[at]!r}, expected {expected!r}"
    return f"{where}: its lines were not found in order"
