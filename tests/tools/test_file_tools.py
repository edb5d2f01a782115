"""read, write, edit, apply_patch and the path checks, in a real sandbox."""

from __future__ import annotations

import pytest

from ise_es.events import FsDiff
from ise_es.sandbox import Sandbox
from tests.tools.conftest import Harness


def test_write_then_read(harness: Harness, sandbox: Sandbox) -> None:
    content = "alpha\nbeta\ngamma\n"
    finished = harness.call("write", path="docs/new.md", content=content)
    assert finished.result_text == f"Successfully wrote {len(content)} bytes to docs/new.md"
    assert sandbox.read_file("docs/new.md") == content.encode()
    diff = harness.of_call(finished.call_id)[-1]
    assert isinstance(diff, FsDiff)
    assert [(c.path, c.kind, c.size) for c in diff.changes if c.path.endswith(".md")] == [
        ("docs/new.md", "added", len(content))
    ]
    assert harness.call("read", path="docs/new.md").result_text == content


def test_write_counts_bytes_not_characters(harness: Harness, sandbox: Sandbox) -> None:
    finished = harness.call("write", path="u.txt", content="héllo ✓")
    assert finished.result_text == "Successfully wrote 10 bytes to u.txt"  # é 2, ✓ 3
    assert sandbox.read_file("u.txt") == "héllo ✓".encode()


def test_absolute_path_inside_the_workspace(harness: Harness, sandbox: Sandbox) -> None:
    path = f"{sandbox.workspace_path}/abs.txt"
    assert not harness.call("write", path=path, content="x").is_error
    assert sandbox.read_file("abs.txt") == b"x"


def test_read_pages_with_offset_and_limit(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.write_file("long.txt", "".join(f"row {i}\n" for i in range(1, 101)).encode())
    page = harness.call("read", path="long.txt", offset=10, limit=3).result_text
    assert page == (
        "row 10\nrow 11\nrow 12\n\n[Showing lines 10-12 of 100. Use offset=13 to continue.]"
    )
    tail = harness.call("read", path="long.txt", offset=99).result_text
    assert tail == "row 99\nrow 100\n"
    beyond = harness.call("read", path="long.txt", offset=101)
    assert beyond.is_error and "argument 'offset' (101) is beyond the end of long.txt" in (
        beyond.result_text
    )


def test_read_errors(harness: Harness, sandbox: Sandbox) -> None:
    assert harness.call("read", path="nope.txt").result_text == "File not found: nope.txt"
    assert "is a directory" in harness.call("read", path="memory").result_text
    sandbox.write_file("bin.dat", b"\xff\xfe\x00binary")
    binary = harness.call("read", path="bin.dat")
    assert binary.is_error and "is not UTF-8 text (9 bytes)" in binary.result_text


@pytest.mark.parametrize("tool", ["read", "write", "edit", "memory_get"])
@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../outside.txt", "escapes the workspace"),
        ("/etc/passwd", "outside the workspace"),
        ("memory/../../x.md", "escapes the workspace"),
    ],
)
def test_lexical_escapes_are_refused(harness: Harness, tool: str, path: str, message: str) -> None:
    args = {"path": path, "content": "x", "oldText": "a", "newText": "b"}
    if tool != "write":
        args.pop("content")
    if tool != "edit":
        args.pop("oldText")
        args.pop("newText")
    finished = harness.call(tool, **args)
    assert finished.is_error and message in finished.result_text


@pytest.mark.parametrize("tool", ["read", "write", "edit", "apply_patch"])
def test_symlinks_pointing_out_are_refused(harness: Harness, tool: str, sandbox: Sandbox) -> None:
    made = harness.call("exec", command="ln -s /etc/hostname out && ln -s / root")
    assert made.exit_code == 0
    calls = {
        "read": [{"path": "out"}, {"path": "root/etc/hostname"}],
        "write": [{"path": "out", "content": "x"}, {"path": "root/tmp/evil", "content": "x"}],
        "edit": [{"path": "out", "oldText": "s", "newText": "t"}],
        "apply_patch": [{"input": "--- a/out\n+++ b/out\n@@ -1 +1 @@\n-sandbox\n+owned\n"}],
    }[tool]
    for args in calls:
        finished = harness.call(tool, **args)
        assert finished.is_error, finished.result_text
        assert "outside the workspace" in finished.result_text


def test_edit_replaces_exactly_one_occurrence(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.write_file("cfg.ini", b"[a]\nport = 80\n[b]\nport = 80\nhost = x\n")
    ok = harness.call("edit", path="cfg.ini", oldText="port = 80\nhost", newText="port = 81\nhost")
    assert ok.result_text == "Successfully replaced text in cfg.ini."
    assert ok.details["firstChangedLine"] == 4
    assert sandbox.read_file("cfg.ini") == b"[a]\nport = 80\n[b]\nport = 81\nhost = x\n"


def test_edit_ambiguous_and_missing_text(harness: Harness, sandbox: Sandbox) -> None:
    sandbox.write_file("cfg.ini", b"port = 80\nport = 80\n")
    ambiguous = harness.call("edit", path="cfg.ini", oldText="port = 80", newText="port = 1")
    assert ambiguous.is_error
    assert ambiguous.result_text.startswith("oldText occurs 2 times in cfg.ini")
    missing = harness.call("edit", path="cfg.ini", oldText="port=80", newText="port = 1")
    assert missing.is_error
    assert missing.result_text.startswith("Could not find oldText in cfg.ini")
    assert sandbox.read_file("cfg.ini") == b"port = 80\nport = 80\n"
    assert [type(e).__name__ for e in harness.of_call(missing.call_id)] == [
        "ToolCallStarted",
        "ToolCallFinished",
    ]
    gone = harness.call("edit", path="ghost.txt", oldText="a", newText="b")
    assert gone.result_text == "File not found: ghost.txt"


PATCH = """\
--- a/todo.md
+++ b/todo.md
@@ -1,3 +1,3 @@
-{title}
+{title} (patched)
{context}
--- /dev/null
+++ b/added.txt
@@ -0,0 +1,2 @@
+first
+second
"""


def test_apply_patch_modifies_and_creates(harness: Harness, sandbox: Sandbox) -> None:
    todo = sandbox.read_file("todo.md").decode()
    lines = todo.splitlines()
    context = "\n".join(" " + line for line in lines[1:3])
    finished = harness.call("apply_patch", input=PATCH.format(title=lines[0], context=context))
    assert not finished.is_error, finished.result_text
    assert finished.result_text == "Patch applied. Changed files:\nM todo.md\nA added.txt"
    assert sandbox.read_file("todo.md").decode() == todo.replace(
        lines[0], lines[0] + " (patched)", 1
    )
    assert sandbox.read_file("added.txt") == b"first\nsecond\n"
    diff = harness.of_call(finished.call_id)[-1]
    assert isinstance(diff, FsDiff)
    assert {(c.path, c.kind) for c in diff.changes} >= {
        ("todo.md", "modified"),
        ("added.txt", "added"),
    }


def test_apply_patch_deletes(harness: Harness, sandbox: Sandbox) -> None:
    contacts = sandbox.read_file("contacts.txt").decode()
    body = "".join("-" + line + "\n" for line in contacts.splitlines())
    n = len(contacts.splitlines())
    patch = f"--- a/contacts.txt\n+++ /dev/null\n@@ -1,{n} +0,0 @@\n{body}"
    finished = harness.call("apply_patch", input=patch)
    assert finished.result_text == "Patch applied. Changed files:\nD contacts.txt"
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("contacts.txt")


def test_apply_patch_that_does_not_apply_changes_nothing(
    harness: Harness, sandbox: Sandbox
) -> None:
    before = sandbox.read_file("todo.md")
    patch = (
        "--- /dev/null\n+++ b/first.txt\n@@ -0,0 +1 @@\n+would be created\n"
        "--- a/todo.md\n+++ b/todo.md\n@@ -1,1 +1,1 @@\n-# Not the title\n+# New\n"
    )
    finished = harness.call("apply_patch", input=patch)
    assert finished.is_error
    assert finished.result_text.startswith("todo.md: hunk 1 (@@ -1,1 +1,1 @@) does not apply")
    assert "expected '# Not the title'" in finished.result_text
    assert sandbox.read_file("todo.md") == before
    with pytest.raises(FileNotFoundError):
        sandbox.read_file("first.txt")
    assert [type(e).__name__ for e in harness.of_call(finished.call_id)] == [
        "ToolCallStarted",
        "ToolCallFinished",
    ]


def test_apply_patch_rejects_garbage_and_escapes(harness: Harness) -> None:
    garbage = harness.call("apply_patch", input="please change the title")
    assert garbage.is_error and "no file sections found" in garbage.result_text
    escape = harness.call(
        "apply_patch", input="--- /dev/null\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+x\n"
    )
    assert escape.is_error and "escapes the workspace" in escape.result_text
