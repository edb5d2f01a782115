"""JSON Schemas generated from the msgspec types, checked in under schemas/.

`ise-es schemas export` writes them; a test fails when the checked-in copies are stale, so the
published contract can never silently drift from the code.

Descriptions come from docstrings, and msgspec's handling of their indentation changed between
minors (0.23 dedents, older releases emit the raw text). We normalise every description with
`inspect.cleandoc` ourselves, so the checked-in files are the same under every msgspec that
pyproject.toml admits and a dependency bump can never make them look stale.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import msgspec

from ise_es.events import EVENT_TYPES, Event
from ise_es.outputs import atomic_output, prepare_output_dir

__all__ = ["clean_descriptions", "generated_schemas", "schema_of", "write_schemas"]

# JSON Schema keywords whose value is a subschema, a list of them, or a name -> subschema map.
# Only these are walked: `default`, `examples`, `const` and `enum` hold data, whose keys (a field
# named "description", say) must stay as they are.
_SUBSCHEMA = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
)
_SUBSCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SUBSCHEMA_MAPS = frozenset({"$defs", "definitions", "properties", "patternProperties"})


def clean_descriptions(schema: object) -> object:
    """Return `schema` with every `description` passed through `inspect.cleandoc`.

    Also puts `{"type": "null"}` last in every `anyOf`, the other thing msgspec's minors order
    differently.

    A new object is returned (the input is not mutated); non-schema values are copied as they are.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, object] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            out[key] = inspect.cleandoc(value)
        elif key in _SUBSCHEMA:
            out[key] = clean_descriptions(value)
        elif key in _SUBSCHEMA_LISTS and isinstance(value, list):
            members = [clean_descriptions(v) for v in value]
            if key == "anyOf":
                # `X | None`: msgspec 0.18 lists null before a Struct's $ref, 0.23 after it. The
                # order means nothing to a validator; null goes last, as the code spells it.
                members.sort(key=lambda m: m == {"type": "null"})
            out[key] = members
        elif key in _SUBSCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: clean_descriptions(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def schema_of(type_: object) -> dict[str, object]:
    """msgspec's JSON Schema for `type_`, descriptions normalised (see the module docstring)."""
    cleaned = clean_descriptions(msgspec.json.schema(type_))
    assert isinstance(cleaned, dict)
    return cleaned


def _dump(schema: object) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def generated_schemas() -> dict[str, str]:
    """File name -> JSON text, for every schema this module owns."""
    events_schema = schema_of(Event)
    events_schema["$comment"] = (
        "ise-es event payloads (a tagged union on `type`). Schema versions per type: "
        + ", ".join(f"{tag}=v{cls.schema_version}" for tag, cls in sorted(EVENT_TYPES.items()))
    )
    return {"events.schema.json": _dump(events_schema)}


def write_schemas(directory: Path) -> list[Path]:
    """Write every generated schema atomically (temp file + rename); returns the paths.

    Raises:
        OutputError: the directory or a schema file cannot be written (see `ise_es.outputs`).
    """
    prepare_output_dir(directory)
    written = []
    for name, text in generated_schemas().items():
        target = directory / name
        with atomic_output(target, stdout_ok=False) as f:
            f.write(text.encode())
        written.append(target)
    return written
