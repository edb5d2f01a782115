"""Schema export: descriptions normalised by us, so msgspec's minor releases cannot change them."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import msgspec
from click.testing import CliRunner

from cli import main
from ise_es.schema_export import clean_descriptions, generated_schemas, schema_of


class _Indented(msgspec.Struct):
    """First line.

    An indented second paragraph, as a docstring inside a class body is written:
    msgspec before 0.23 emitted these leading spaces, 0.23 strips them.
    """

    size: Annotated[int, msgspec.Meta(description="\n    bytes,\n      indented more\n")]


def _descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "description" and isinstance(v, str)]
        return found + [d for v in node.values() for d in _descriptions(v)]
    if isinstance(node, list):
        return [d for v in node for d in _descriptions(v)]
    return []


def test_struct_docstring_is_cleandoc_normalised() -> None:
    schema: Any = schema_of(_Indented)
    definition = schema["$defs"]["_Indented"]
    assert definition["description"] == inspect.cleandoc(_Indented.__doc__ or "")
    assert definition["properties"]["size"]["description"] == "bytes,\n  indented more"


def test_raw_descriptions_are_normalised_everywhere_a_schema_can_hold_one() -> None:
    """What msgspec 0.18-0.22 emit (raw indented docstrings, null first) comes out as 0.23's."""
    raw = "Top.\n\n    indented body\n    "
    clean = "Top.\n\nindented body"
    schema = {
        "description": raw,
        "$defs": {"A": {"description": raw, "properties": {"x": {"description": raw}}}},
        "anyOf": [{"type": "null"}, {"description": raw}, {"items": {"description": raw}}],
        "additionalProperties": {"description": raw},
        # Data, not schema: left exactly as it is.
        "default": {"description": raw},
        "examples": [{"description": raw}],
        "properties": {"description": {"type": "string", "const": raw}},
    }
    out: Any = clean_descriptions(schema)
    assert out["description"] == clean
    assert out["$defs"]["A"]["description"] == clean
    assert out["$defs"]["A"]["properties"]["x"]["description"] == clean
    assert out["anyOf"][0]["description"] == clean
    assert out["anyOf"][1]["items"]["description"] == clean
    assert out["anyOf"][2] == {"type": "null"}  # null last, as msgspec 0.23 and `X | None` do
    assert out["additionalProperties"]["description"] == clean
    assert out["default"] == {"description": raw}
    assert out["examples"] == [{"description": raw}]
    assert out["properties"]["description"] == {"type": "string", "const": raw}
    assert schema["description"] == raw  # the input is not mutated


def test_every_exported_description_is_cleandoc_normalised() -> None:
    for name, text in generated_schemas().items():
        descriptions = _descriptions(msgspec.json.decode(text))
        assert descriptions, name
        for d in descriptions:
            assert d == inspect.cleandoc(d), (name, d)


def test_cli_export_writes_what_generated_schemas_returns(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["schemas", "export", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name, text in generated_schemas().items():
        assert (tmp_path / name).read_text() == text
