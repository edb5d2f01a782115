"""The projections' fast paths give exactly what the slow ones they skip would give."""

from __future__ import annotations

import json
import math
import shlex

import pytest

from ise_es.projections.session import parse_json
from ise_es.projections.stats import _NEEDS_SHLEX, command_family

TEXTS = [
    '{"command": "ls -la", "timeout": 30}',
    '{"a": 123456789012345678901234567890, "b": [1.5, -0, null, true]}',
    '{"a": 1, "a": 2}',
    '{"a": NaN}',
    '{"a": 1e400}',
    '"\\ud800"',
    " [1] ",
    '{"a": "caf\\u00e9"}',
]


@pytest.mark.parametrize("text", TEXTS)
def test_parse_json_is_json_loads(text: str) -> None:
    expected = json.loads(text)
    got = parse_json(text)
    assert repr(got) == repr(expected)  # repr: nan != nan, and types must match too
    if isinstance(expected, dict) and isinstance(expected.get("a"), float):
        assert math.isnan(got["a"]) == math.isnan(expected["a"])


@pytest.mark.parametrize("text", ['{"a": 1,}', "{", "", "[1] x"])
def test_parse_json_refuses_what_json_loads_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        parse_json(text)


COMMANDS = [
    "cd src && python3 -m pytest -q",
    "FOO=1 timeout 30 make test",
    "git commit -m 'fix: the bug'",
    'echo "a b" | wc -w',
    "cat a\\ b.txt",
    "ls\x0bfoo",
    "echo café",
    "sudo env X=1 npm run build",
    "unterminated 'quote",
    "  ",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_plain_commands_split_like_shlex(command: str) -> None:
    if _NEEDS_SHLEX.search(command) is None:
        assert command.split() == shlex.split(command)
    command_family.cache_clear()
    first = command_family(command)
    assert command_family(command) == first  # the cached answer is the computed one


def test_command_families() -> None:
    assert command_family("cd src && python3 -m pytest -q") == "python -m pytest"
    assert command_family("git commit -m 'fix: the bug'") == "git commit"
    assert command_family("FOO=1 timeout 30 make test") == "make"
    assert command_family("sudo env X=1 npm run build") == "npm run"
