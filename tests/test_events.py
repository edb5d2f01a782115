"""The event model: strict decoding, clear errors for unknown types, current schemas on disk."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ise_es import events
from ise_es.errors import InvalidEvent, UnknownEventType
from ise_es.schema_export import generated_schemas

ROOT = Path(__file__).resolve().parents[1]


def test_every_event_round_trips_through_json() -> None:
    sample = events.ToolCallFinished(call_id="c1", tool="exec", result_text="ok", exit_code=0)
    tag, version, payload = events.encode_checked(sample)
    assert (tag, version) == ("tool_call_finished", 1)
    assert events.decode_payload(tag, version, payload) == sample
    assert events.decode_union(payload) == sample


def test_bytes_survive_byte_exact() -> None:
    chunk = events.OutputChunk(call_id="c", stream="stdout", seq=0, data=b"\xff\x00\xfe")
    tag, version, payload = events.encode_checked(chunk)
    assert events.decode_payload(tag, version, payload).data == b"\xff\x00\xfe"  # type: ignore[union-attr]


def test_unknown_type_names_type_and_version() -> None:
    expected = r"unknown event type 'gizmo_added' \(schema version 3\)"
    with pytest.raises(UnknownEventType, match=expected):
        events.decode_payload("gizmo_added", 3, b"{}")


def test_newer_schema_version_is_refused() -> None:
    expected = "'user_turn' has schema version 2, newer than the 1"
    with pytest.raises(UnknownEventType, match=expected):
        events.decode_payload("user_turn", 2, b'{"type":"user_turn","turn":1,"text":"x"}')


def test_payload_of_the_wrong_shape_is_invalid() -> None:
    with pytest.raises(InvalidEvent, match=r"user_turn v1: .*\$\.turn"):
        events.decode_payload("user_turn", 1, b'{"type":"user_turn","turn":"one","text":"x"}')


def test_older_versions_are_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend user_turn is at v2 and v1 lacked `reason`: the upcaster runs on read.
    monkeypatch.setattr(events.UserTurn, "schema_version", 2)
    monkeypatch.setitem(
        events.UPCASTERS, ("user_turn", 1), lambda d: {**d, "reason": "upcast from v1"}
    )
    old = b'{"type":"user_turn","turn":1,"text":"hi"}'
    assert events.decode_payload("user_turn", 1, old).reason == "upcast from v1"  # type: ignore[union-attr]


def test_not_an_event_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="not an ise-es event: dict"):
        events.encode_checked({"type": "user_turn"})


def test_tags_are_unique_snake_case() -> None:
    assert all(tag == tag.lower() and " " not in tag for tag in events.EVENT_TYPES)
    assert len(events.EVENT_TYPES) == len({c.__name__ for c in events.EVENT_TYPES.values()})


def test_checked_in_schemas_are_current() -> None:
    for name, text in generated_schemas().items():
        path = ROOT / "schemas" / name
        assert path.exists() and path.read_text() == text, (
            f"schemas/{name} is stale: run `ise-es schemas export` and commit it"
        )
    # And the schema really describes the union.
    schema = msgspec.json.decode((ROOT / "schemas" / "events.schema.json").read_bytes())
    assert len(schema["anyOf"]) == len(events.EVENT_TYPES)
