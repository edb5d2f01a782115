"""The unified-diff parser and applier, on its own (the tool is tested in test_file_tools)."""

from __future__ import annotations

import difflib

import pytest

from ise_es.tools.patch import PatchError, apply_file_patch, parse_patch


def udiff(old: str, new: str, name: str = "f.txt", n: int = 3) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True),
        new.splitlines(keepends=True),
        f"a/{name}",
        f"b/{name}",
        n=n,
    )
    out = []
    for line in lines:
        out.append(line)
        if not line.endswith("\n"):
            out.append("\n\\ No newline at end of file\n")
    return "".join(out)


def apply(patch: str, old: str | None) -> str | None:
    (file_patch,) = parse_patch(patch)
    return apply_file_patch(file_patch, old)


OLD = "".join(f"line {i}\n" for i in range(1, 31))


@pytest.mark.parametrize(
    "new",
    [
        OLD.replace("line 5\n", "line five\n"),
        OLD.replace("line 1\n", ""),
        OLD + "line 31\n",
        "line 0\n" + OLD,
        OLD.replace("line 10\n", "a\nb\nc\n").replace("line 25\n", ""),
        OLD.rstrip("\n"),
        "",
    ],
    ids=["change", "drop-first", "append", "prepend", "two-hunks", "drop-eof-newline", "empty"],
)
def test_round_trips_what_difflib_produces(new: str) -> None:
    assert apply(udiff(OLD, new), OLD) == new


def test_adds_missing_final_newline() -> None:
    old = "a\nb"
    assert apply(udiff(old, "a\nb\n"), old) == "a\nb\n"


def test_hunk_applies_at_an_offset_when_the_file_moved_on() -> None:
    patch = udiff(OLD, OLD.replace("line 20\n", "line twenty\n"))
    shifted = "new header\nanother\n" + OLD
    assert apply(patch, shifted) == "new header\nanother\n" + OLD.replace(
        "line 20\n", "line twenty\n"
    )


def test_crlf_lines_survive() -> None:
    old = "one\r\ntwo\r\nthree\r\n"
    patch = "--- a/x\n+++ b/x\n@@ -2 +2 @@\n-two\r\n+TWO\r\n"
    assert apply(patch, old) == "one\r\nTWO\r\nthree\r\n"


def test_create_and_delete() -> None:
    create = "--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+hello\n+world\n"
    (fp,) = parse_patch(create)
    assert fp.old_path is None and fp.path == "new.txt"
    assert apply_file_patch(fp, None) == "hello\nworld\n"
    delete = "--- a/new.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-hello\n-world\n"
    assert apply(delete, "hello\nworld\n") is None


def test_git_preamble_and_several_files() -> None:
    patch = (
        "diff --git a/x.txt b/x.txt\nindex 1111111..2222222 100644\n"
        "--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-x\n+X\n"
        "diff --git a/y.txt b/y.txt\n--- a/y.txt\n+++ b/y.txt\n@@ -1 +1 @@\n-y\n+Y\n"
    )
    files = parse_patch(patch)
    assert [f.path for f in files] == ["x.txt", "y.txt"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("just some text\n", "no file sections found"),
        ("@@ -1 +1 @@\n-a\n+b\n", "patch line 1: hunk before any"),
        ("--- a/x\n@@ -1 +1 @@\n", "patch line 2: expected '+++ '"),
        ("--- a/x\n+++ b/x\n", "file x has no hunks"),
        ("--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-a\n+b\n", "promises 2 old and 2 new lines but has 1"),
        ("--- a/x\n+++ b/x\n@@ -one +1 @@\n-a\n+b\n", "malformed hunk header"),
        (
            "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n a\n*b\n+c\n",
            "patch line 5: expected a ' ', '-' or '+'",
        ),
    ],
)
def test_malformed_patches_say_where(patch: str, message: str) -> None:
    with pytest.raises(PatchError, match=message.replace("(", r"\(").replace("+", r"\+")):
        parse_patch(patch)


def test_hunk_that_does_not_apply_names_file_hunk_and_line() -> None:
    patch = "--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n line 1\n-line TWO\n+2\n line 3\n"
    with pytest.raises(PatchError) as info:
        apply(patch, OLD)
    message = str(info.value)
    assert message.startswith("f.txt: hunk 1 (@@ -1,3 +1,3 @@) does not apply")
    assert "line 2 is 'line 2', expected 'line TWO'" in message


def test_create_over_existing_and_patch_of_missing_file_fail() -> None:
    with pytest.raises(PatchError, match="already exists"):
        apply("--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+a\n", "old\n")
    with pytest.raises(PatchError, match="x: file not found"):
        apply("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", None)
