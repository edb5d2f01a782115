"""Argument validation: every way a model's arguments can be wrong is named in the message."""

from __future__ import annotations

import pytest

from ise_es.tools import default_registry
from ise_es.tools.schema import ArgumentError, parse_arguments

EXEC = default_registry().get("exec")
assert EXEC is not None
SCHEMA = EXEC.parameters


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"command": "ls"', "not valid JSON"),
        ("[1, 2]", "must be a JSON object, got array"),
        ('"ls"', "must be a JSON object, got string"),
        ("{}", "missing required argument 'command'"),
        ('{"command": null}', "missing required argument 'command'"),
        ('{"command": 42}', "argument 'command' must be a string, got integer"),
        ('{"command": "ls", "timeout": "30"}', "argument 'timeout' must be a number, got string"),
        ('{"command": "ls", "timeout": 0}', "argument 'timeout' must be >= 0.1"),
        ('{"command": "ls", "background": "yes"}', "argument 'background' must be a boolean"),
        ('{"command": "ls", "yieldMs": 1.5}', "argument 'yieldMs' must be an integer"),
        ('{"command": "ls", "env": {"A": 1}}', "argument 'env.A' must be a string"),
        ('{"command": "ls", "env": ["A"]}', "argument 'env' must be an object"),
        ('{"command": "ls", "cwd": "/tmp"}', "unknown argument 'cwd' (accepted: command, workdir"),
    ],
)
def test_bad_arguments_name_the_argument(raw: str, expected: str) -> None:
    with pytest.raises(ArgumentError) as info:
        parse_arguments(raw, SCHEMA)
    assert expected in str(info.value)


def test_valid_arguments_are_normalised() -> None:
    args = parse_arguments('{"command": "ls", "yieldMs": 500.0, "workdir": null}', SCHEMA)
    assert args == {"command": "ls", "yieldMs": 500}
    assert isinstance(args["yieldMs"], int)


def test_empty_arguments_string_counts_as_empty_object() -> None:
    process = default_registry().get("process")
    assert process is not None
    with pytest.raises(ArgumentError, match="missing required argument 'action'"):
        parse_arguments("", process.parameters)


def test_enum_lists_the_choices() -> None:
    process = default_registry().get("process")
    assert process is not None
    with pytest.raises(ArgumentError, match=r"argument 'action' must be one of \"list\""):
        parse_arguments('{"action": "start"}', process.parameters)


def test_array_items_are_checked_with_their_index() -> None:
    process = default_registry().get("process")
    assert process is not None
    with pytest.raises(ArgumentError, match=r"argument 'keys\[1\]' must be a string"):
        parse_arguments('{"action": "send-keys", "keys": ["a", 2]}', process.parameters)


def test_registry_schemas_follow_the_reference_names_in_a_stable_order() -> None:
    schemas = default_registry().schemas()
    names = [s["function"]["name"] for s in schemas]
    assert names == [
        "exec",
        "process",
        "read",
        "write",
        "edit",
        "apply_patch",
        "web_search",
        "web_fetch",
        "memory_search",
        "memory_get",
        "cron",
    ]
    params = {s["function"]["name"]: s["function"]["parameters"] for s in schemas}
    assert set(params["exec"]["properties"]) == {
        "command",
        "workdir",
        "env",
        "timeout",
        "background",
        "yieldMs",
        "pty",
    }
    assert set(params["process"]["properties"]) >= {
        "action",
        "sessionId",
        "data",
        "keys",
        "text",
        "eof",
        "offset",
        "limit",
        "timeout",
    }
    assert params["read"]["required"] == ["path"]
    assert set(params["read"]["properties"]) == {"path", "offset", "limit"}
    assert params["edit"]["required"] == ["path", "oldText", "newText"]
    assert params["apply_patch"]["required"] == ["input"]
    assert set(params["web_search"]["properties"]) == {
        "query",
        "count",
        "country",
        "language",
        "freshness",
    }
    assert set(params["web_fetch"]["properties"]) == {"url", "extractMode", "maxChars"}
    assert params["web_fetch"]["properties"]["maxChars"]["minimum"] == 100
    assert set(params["memory_search"]["properties"]) == {"query", "maxResults", "minScore"}
    assert set(params["memory_get"]["properties"]) == {"path", "from", "lines"}
    for schema in schemas:
        assert schema["type"] == "function"
        assert schema["function"]["parameters"]["additionalProperties"] is False
