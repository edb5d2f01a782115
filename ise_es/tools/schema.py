"""Argument validation against a tool's JSON schema (the subset our schemas use).

The model's arguments arrive as a raw JSON string. `parse_arguments` turns it into a dict or
raises `ArgumentError` with a message that names the offending argument, so the agent can fix
its call from the result text alone. We validate the subset of JSON Schema that our tool
schemas use (type, properties, required, additionalProperties, enum, minimum, maximum, items,
minLength) rather than pull in a full validator: the messages are what matters here, and a
general validator's messages ("Additional properties are not allowed ('x' was unexpected)")
are worse for a model to act on.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ise_es.errors import ToolError

__all__ = ["ArgumentError", "parse_arguments", "validate"]


class ArgumentError(ToolError):
    """The arguments of a tool call do not match the tool's schema."""


_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    list: "array",
    dict: "object",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _where(path: str) -> str:
    return f"argument '{path}'" if path else "arguments"


def _check_type(value: Any, expected: str, path: str) -> Any:
    """Return the value (integral floats become ints for 'integer'), or raise."""
    ok: bool
    if expected == "string":
        ok = isinstance(value, str)
    elif expected == "boolean":
        ok = isinstance(value, bool)
    elif expected == "integer":
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and isinstance(value, float) and not math.isfinite(value):
            ok = False
    elif expected == "array":
        ok = isinstance(value, list)
    elif expected == "object":
        ok = isinstance(value, dict)
    else:  # pragma: no cover - a schema bug, not a model error
        raise ValueError(f"schema uses unsupported type {expected!r}")
    if not ok:
        raise ArgumentError(
            f"{_where(path)} must be {_article(expected)} {expected}, got {_json_type(value)}"
            f" {_preview(value)}"
        )
    return value


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _preview(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def validate(value: Any, schema: dict[str, Any], path: str = "") -> Any:
    """Check `value` against `schema`; return it normalised (integral floats -> int).

    Raises:
        ArgumentError: naming the first argument that is wrong, and how.
    """
    expected = schema.get("type")
    if isinstance(expected, str):
        value = _check_type(value, expected, path)
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(c) for c in schema["enum"])
        raise ArgumentError(f"{_where(path)} must be one of {choices}, got {_preview(value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise ArgumentError(f"{_where(path)} must be >= {schema['minimum']}, got {value}")
        if "maximum" in schema and value > schema["maximum"]:
            raise ArgumentError(f"{_where(path)} must be <= {schema['maximum']}, got {value}")
    if isinstance(value, str) and len(value) < schema.get("minLength", 0):
        raise ArgumentError(f"{_where(path)} must not be empty")
    if isinstance(value, list) and "items" in schema:
        value = [validate(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        value = _validate_object(value, schema, path)
    return value


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value or value[name] is None:
            raise ArgumentError(f"missing required {_where(_join(path, name))}")
    out: dict[str, Any] = {}
    for name, item in value.items():
        sub = properties.get(name)
        if sub is None:
            if schema.get("additionalProperties", True) is False:
                known = ", ".join(properties) or "none"
                raise ArgumentError(f"unknown {_where(_join(path, name))} (accepted: {known})")
            extra = schema.get("additionalProperties")
            out[name] = (
                validate(item, extra, _join(path, name)) if isinstance(extra, dict) else item
            )
            continue
        if item is None and name not in schema.get("required", []):
            # Models often send explicit nulls for optional parameters: treat as absent.
            continue
        out[name] = validate(item, sub, _join(path, name))
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def parse_arguments(raw: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Decode the model's raw arguments string and validate it against `schema`.

    An empty string counts as `{}` (some servers send it for tools without parameters).

    Raises:
        ArgumentError: invalid JSON, not an object, or a schema violation.
    """
    text = raw.strip()
    if not text:
        data: Any = {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArgumentError(
                f"arguments are not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
            ) from e
    if not isinstance(data, dict):
        raise ArgumentError(f"arguments must be a JSON object, got {_json_type(data)}")
    result = validate(data, schema)
    assert isinstance(result, dict)
    return result
