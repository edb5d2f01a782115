"""The tool schemas of an imported session: the agent's real ones from a file (`--tools`, or
the reference's OpenClaw catalogue shipped with ise-es), or, when none is given, schemas
inferred from the arguments of the calls the session made."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ise_es.errors import InvalidInput
from ise_es.events import SessionStarted
from ise_es.projections.session import function_schemas

__all__ = ["infer_tool_schemas", "load_tool_schemas", "reference_tool_schemas"]


def reference_tool_schemas() -> list[dict[str, Any]]:
    raw = resources.files("ise_es.projections").joinpath("openclaw_tools.json").read_text()
    schemas: list[dict[str, Any]] = json.loads(raw)
    return schemas


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def infer_tool_schemas(arguments: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """OpenAI function schemas for the tools used, from the arguments of their calls: each
    key seen becomes a property typed by the JSON types seen (integer and number merge to
    number), required when every call had it. Descriptions stay empty: nothing says them."""
    out: list[dict[str, Any]] = []
    for name, calls in arguments.items():
        objects = [a for a in calls if isinstance(a, dict)]
        types: dict[str, list[str]] = {}
        for args in objects:
            for key, value in args.items():
                seen = types.setdefault(key, [])
                kind = _json_type(value)
                if kind not in seen:
                    seen.append(kind)
        properties: dict[str, Any] = {}
        for key, kinds in types.items():
            if "integer" in kinds and "number" in kinds:
                kinds = [k for k in kinds if k != "integer"]
            properties[key] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        required = [k for k in types if objects and all(k in a for a in objects)]
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        out.append(
            {
                "type": "function",
                "function": {"name": name, "description": "", "parameters": parameters},
            }
        )
    return out


def load_tool_schemas(path: str | Path) -> list[dict[str, Any]]:
    """The agent's real tool schemas from a JSON file: a list of function schemas (wrapped
    `{type, function}` or bare `{name, description, parameters}`), or an object holding them
    under `tools` (a middle-format file or a runtime catalogue).

    Raises:
        InvalidInput: unreadable, not JSON, or no list of named schemas.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except OSError as e:
        raise InvalidInput(f"{p}: cannot read: {e.strerror or e}") from e
    except ValueError as e:
        raise InvalidInput(f"{p}: not JSON ({e})") from e
    if isinstance(data, dict):
        data = data.get("tools")
    if isinstance(data, str):  # sharegpt keeps `tools` as a JSON string
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{p}: expected a JSON list of tool schemas (or an object with 'tools')")
    started = SessionStarted(session_id="", intent_id="", intent="", tool_schemas=data)
    schemas = function_schemas(started)
    for i, schema in enumerate(schemas):
        if not isinstance(schema["function"], dict) or not isinstance(
            schema["function"].get("name"), str
        ):
            raise InvalidInput(f"{p}: tool schema {i} has no string 'name'")
    return schemas
