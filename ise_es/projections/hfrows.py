"""Trainer samples as Parquet rows: the declared Arrow schema of each format, and the mapping
between a sample (what `project sft-jsonl` writes on one line) and a row.

Arrow needs one type per column, and a trajectory has parts whose shape varies from row to
row; those parts become JSON strings, as trajectory datasets on the Hub store them:
- `tool_calls[].function.arguments` is a string in every format (OpenAI's and TRL's own
  convention; the middle format's argument objects are encoded, a malformed argument string is
  kept as it was);
- `tools` is a JSON string in every format (sharegpt already writes it so, for LLaMA-Factory;
  for openai each tool's `parameters` schema has its own keys, and a struct column would merge
  them all into every row with nulls, which is not the schema the agent saw);
- the middle format's `skills` and `metadata` (free-form persona, details, provenance).
Messages are a list of structs with one field per key any message may carry; a key a message
does not have is null. `session_id` is added to openai and sharegpt rows (the middle format
already carries it) so each row can be traced to its stream.

`sample_from_row` is the exact inverse of `row_from_sample`: nulls dropped, JSON strings
decoded. The tests hold the two to it against the JSONL export.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from ise_es.errors import ConfigError
from ise_es.projections.middleformat import arguments_value

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "JSON_COLUMNS",
    "arrow_schema",
    "features_yaml",
    "row_from_sample",
    "sample_from_row",
]

JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "openai": ("tools",),
    "sharegpt": (),  # its `tools` is already the JSON string LLaMA-Factory reads
    "middle": ("tools", "skills", "metadata"),
}
"""Columns holding JSON text (decode with json.loads), per format."""

_encode = msgspec.json.Encoder().encode


def arrow_schema(fmt: str) -> pa.Schema:
    """The declared schema of `fmt`'s rows (column order = the sample's key order).

    Raises:
        ConfigError: an unknown format.
    """
    import pyarrow as pa

    s = pa.string()
    function = pa.struct([("name", s), ("arguments", s)])
    call = pa.struct([("id", s), ("type", s), ("function", function)])
    # the message fields openai and middle share, in the order both write them
    shared = [("role", s), ("content", s), ("reasoning_content", s), ("tool_calls", pa.list_(call))]
    if fmt == "openai":
        message = pa.struct([*shared, ("tool_call_id", s), ("weight", pa.int64())])
        return pa.schema([("session_id", s), ("messages", pa.list_(message)), ("tools", s)])
    if fmt == "sharegpt":
        turn = pa.struct([("from", s), ("value", s)])
        return pa.schema(
            [("session_id", s), ("conversations", pa.list_(turn)), ("system", s), ("tools", s)]
        )
    if fmt == "middle":
        message = pa.struct([*shared, ("name", s), ("tool_call_id", s), ("success", pa.bool_())])
        intent = pa.struct([("intent_id", s), ("natural_language_intent", s), ("task_type", s)])
        return pa.schema(
            [
                ("status", s),
                ("session_id", s),
                ("intent_id", s),
                ("total_steps", pa.int64()),
                ("enable_thinking", pa.bool_()),
                ("messages", pa.list_(message)),
                ("tools", s),
                ("skills", s),
                ("final_output", s),
                ("source_intent_count", pa.int64()),
                ("source_intent_ids", pa.list_(s)),
                ("source_intents", pa.list_(intent)),
                ("session_finalized_by_intent_id", s),
                ("metadata", s),
            ]
        )
    raise ConfigError(f"no Parquet schema for format {fmt!r}: use openai, sharegpt or middle")


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else _encode(arguments).decode()


def _encoded_calls(message: dict[str, Any]) -> dict[str, Any]:
    calls = message.get("tool_calls")
    if not calls:
        return message
    out = dict(message)
    out["tool_calls"] = [
        {
            **call,
            "function": {
                **call["function"],
                "arguments": _arguments_text(call["function"]["arguments"]),
            },
        }
        for call in calls
    ]
    return out


def row_from_sample(sample: dict[str, Any], fmt: str, session_id: str) -> dict[str, Any]:
    """One sample as a row of `arrow_schema(fmt)` (JSON-ready: strings, numbers, lists)."""
    row: dict[str, Any] = sample if fmt == "middle" else {"session_id": session_id, **sample}
    row = dict(row)
    for column in JSON_COLUMNS[fmt]:
        row[column] = _encode(sample[column]).decode()
    if fmt == "middle":
        row["messages"] = [_encoded_calls(m) for m in sample["messages"]]
    return row


def _without_nulls(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if v is not None}


def sample_from_row(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The sample a row was made from (the exact inverse of `row_from_sample`)."""
    sample = dict(row)
    if fmt != "middle":
        sample.pop("session_id", None)
    for column in JSON_COLUMNS[fmt]:
        sample[column] = json.loads(sample[column])
    key = "conversations" if fmt == "sharegpt" else "messages"
    messages = [_without_nulls(m) for m in sample[key]]
    if fmt == "middle":
        for m in messages:
            for call in m.get("tool_calls", []):
                call["function"]["arguments"] = arguments_value(call["function"]["arguments"])
    sample[key] = messages
    return sample


def _feature(arrow_type: pa.DataType) -> dict[str, Any]:
    """One type in the card's `dataset_info.features` notation (what `datasets` reads)."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type):
        item = arrow_type.value_type
        if pa.types.is_struct(item):
            return {"list": [{"name": f.name, **_feature(f.type)} for f in item]}
        return {"list": _feature(item)["dtype"]}
    if pa.types.is_struct(arrow_type):
        return {"struct": [{"name": f.name, **_feature(f.type)} for f in arrow_type]}
    names = {pa.string(): "string", pa.int64(): "int64", pa.bool_(): "bool"}
    if arrow_type not in names:
        raise ValueError(f"no dataset feature for Arrow type {arrow_type}")
    return {"dtype": names[arrow_type]}


def features_yaml(schema: pa.Schema) -> list[dict[str, Any]]:
    """`dataset_info.features` for the card: the Parquet schema in the Hub's notation."""
    return [{"name": field.name, **_feature(field.type)} for field in schema]
