"""Issue 16's size rule, kept by a test: no module above 600 lines and no function above 60
lines (from its `def` to its last line, docstring included) unless a comment says why.

A long function is allowed when the comment line right above it (above its decorators, if
any) starts with `# Long:`; a long module when one of its first 30 lines starts with
`# Long module:`. The reason is for the reader; the test only checks that it was written,
so a function cannot grow past the limit without someone deciding it should.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_LINES = 600
FUNCTION_LINES = 60


def source_files() -> list[Path]:
    files = [
        *ROOT.glob("ise_es/**/*.py"),
        *ROOT.glob("replay/**/*.py"),
        *ROOT.glob("benchmarks/*.py"),
        ROOT / "cli.py",
    ]
    return sorted(path for path in files if "__pycache__" not in path.parts)


def first_line(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines), filename=str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        above = lines[first_line(node) - 2].strip() if first_line(node) > 1 else ""
        if length > FUNCTION_LINES and not above.startswith("# Long:"):
            found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_functions_are_short_or_say_why() -> None:
    found = [entry for path in source_files() for entry in long_functions(path)]
    assert not found, (
        f"functions over {FUNCTION_LINES} lines without a '# Long:' reason above them:\n"
        + "\n".join(found)
    )


def test_modules_are_short_or_say_why() -> None:
    found = []
    for path in source_files():
        lines = path.read_text().splitlines()
        excused = any(line.startswith("# Long module:") for line in lines[:30])
        if len(lines) > MODULE_LINES and not excused:
            found.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not found, f"modules over {MODULE_LINES} lines without a reason:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n" + "    x = 1\n" * 61, ["f"]),
        ("def f():\n" + "    x = 1\n" * 59, []),
        ("# Long: a state machine\ndef f():\n" + "    x = 1\n" * 61, []),
        ("# Long: reason\n@decorator\ndef f():\n" + "    x = 1\n" * 61, []),
        ("# unrelated\ndef f():\n" + "    x = 1\n" * 61, ["f"]),
    ],
)
def test_the_rule_itself(tmp_path: Path, source: str, expected: list[str]) -> None:
    """The checker finds what it should and honours only a `# Long:` line right above."""
    module = tmp_path / "probe.py"
    module.write_text(source)
    names = [entry.split(" ")[1] for entry in long_functions(module, root=tmp_path)]
    assert names == expected
