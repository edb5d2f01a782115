"""OpenClaw session JSONL import: mapping, idempotency, and files that are not imported."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ise_es.errors import InvalidInput
from ise_es.events import (
    AgentMessage,
    ModelCall,
    SessionEnded,
    SessionStarted,
    UserTurn,
    event_type_of,
)
from ise_es.projections.audit import audit_session, load_lexicon
from ise_es.projections.formats import render, resolve_options
from ise_es.projections.openclaw import import_openclaw, parse_openclaw, strip_envelope
from ise_es.projections.session import SessionView, call_failed, fold_session
from ise_es.store.base import StoredEvent
from ise_es.store.sql import SqlEventStore

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openclaw"
LOGS = FIXTURES / "session-logs.jsonl"
SERVER = FIXTURES / "session-server.jsonl"


def events_of(path: Path) -> list[object]:
    return [e.data for e in parse_openclaw(path).events]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[Thu 2026-03-26 21:29 GMT+8] Count lines", "Count lines"),
        ("[Mon 2026-01-05 09:03:11 UTC] hi", "hi"),
        ("[not an envelope] hi", "[not an envelope] hi"),
        ("Count [Thu 2026-03-26 21:29 GMT+8] lines", "Count [Thu 2026-03-26 21:29 GMT+8] lines"),
    ],
)
def test_envelope_is_stripped_only_at_the_start(text: str, expected: str) -> None:
    assert strip_envelope(text) == expected


def test_session_shape() -> None:
    parsed = parse_openclaw(LOGS)
    assert parsed.stream_id == "session-7f3c2a105b8e4d219a6f0c1e2d3b4a59"
    events = [e.data for e in parsed.events]
    started, ended = events[0], events[-1]
    assert isinstance(started, SessionStarted)
    assert started.provenance["source_file"] == "session-logs.jsonl"
    assert started.provenance["imported"] is True
    assert len(started.provenance["source_digest"]) == 64
    assert started.provenance["thinking_levels"] == ["medium"]
    assert started.provenance["custom_entries"] == {"model-snapshot": 1}
    assert started.intent.startswith("Count the lines")
    assert [m.model for m in started.models] == ["qwen3-32b"]
    # no --tools: only the tools the agent used, each inferred from its calls
    assert [s["function"]["name"] for s in started.tool_schemas] == ["exec", "write"]
    exec_params = started.tool_schemas[0]["function"]["parameters"]
    assert exec_params == {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    }
    assert started.provenance["tool_schemas_source"].startswith("inferred from the arguments")
    assert started.started_at == datetime(2026, 3, 26, 13, 29, 0, 120000, UTC).timestamp()
    assert isinstance(ended, SessionEnded) and ended.status == "completed"
    assert (ended.user_turns, ended.tool_calls) == (2, 3)
    users = [e for e in events if isinstance(e, UserTurn)]
    assert [u.text for u in users] == [
        "Count the lines of every .log file under logs/ and save the totals to "
        "memory/2026-03-26.md.",
        "Thanks. Which file is bigger?",
    ]


def test_assistant_messages_keep_thinking_and_block_order() -> None:
    events = events_of(LOGS)
    messages = [e for e in events if isinstance(e, AgentMessage)]
    assert len(messages) == 4
    thinking_only = messages[2]
    assert thinking_only.text == "" and thinking_only.tool_calls == []
    assert thinking_only.reasoning == "The missing log does not matter; the totals are saved."
    first = messages[0]
    assert first.text == "Let me count the lines first."
    assert json.loads(first.tool_calls[0].arguments) == {"command": "wc -l logs/*.log"}
    assert [(m.turn, m.step) for m in messages] == [(1, 0), (1, 1), (1, 2), (2, 0)]
    call = next(e for e in events if isinstance(e, ModelCall))
    assert [b["type"] for b in call.response["content"]] == ["thinking", "text", "toolCall"]
    assert call.usage.prompt_tokens == 2100 and call.usage.completion_tokens == 80
    assert call.latency_ms == 2500.0  # appended 13:29:08.500, request started 13:29:06.000


def fold(path: Path) -> SessionView:
    parsed = parse_openclaw(path)
    return fold_session(
        StoredEvent(
            position=i + 1,
            stream_id=parsed.stream_id,
            version=i + 1,
            event_id=e.event_id,
            type=event_type_of(e.data),
            schema_version=1,
            recorded_at=0.0,
            data=e.data,
            hash="",
        )
        for i, e in enumerate(parsed.events)
    )


def test_outcome_comes_from_is_error_and_details() -> None:
    results = fold(LOGS).results()
    assert [call_failed(r) for r in results] == [False, False, True]  # exit code 2
    failed = results[2]
    assert failed.exit_code == 2 and failed.is_error
    assert failed.details["isError"] is False  # the raw flag is kept beside the outcome
    server = {r.tool: r for r in fold(SERVER).results()}
    assert server["web_fetch"].is_error  # details.status "error" with isError false
    assert server["web_fetch"].error == "HTTP 404"
    assert not server["exec"].is_error  # status "running" is not a failure


def test_imported_sessions_export_and_audit_cleanly() -> None:
    for path in (LOGS, SERVER):
        view = fold(path)
        assert audit_session(view, load_lexicon()).findings == []
        [middle] = render(view, resolve_options(format="middle"))
        assert [m["success"] for m in middle["messages"] if m["role"] == "tool"] == (
            [True, True, False] if path == LOGS else [True, False, True]
        )
        [sharegpt] = render(view, resolve_options(format="sharegpt"))
        assert sharegpt["conversations"][0]["from"] == "human"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("mutate", "line", "message"),
    [
        (lambda ls: [*ls[:5], "{not json", *ls[5:]], 6, "not a JSON object"),
        (lambda ls: ls[1:], 1, "the first entry must be the session header"),
        (lambda ls: [*ls[:3], "[1, 2]", *ls[3:]], 4, "an entry must be a JSON object"),
    ],
)
def test_a_bad_line_is_named_by_file_and_line(
    tmp_path: Path, mutate: object, line: int, message: str
) -> None:
    lines = LOGS.read_text().splitlines()
    path = write_lines(tmp_path / "broken.jsonl", mutate(lines))  # type: ignore[operator]
    with pytest.raises(InvalidInput, match=f"broken.jsonl:{line}: {message}"):
        parse_openclaw(path)


def test_import_is_idempotent_and_whole_files_only(store: SqlEventStore, tmp_path: Path) -> None:
    broken = write_lines(tmp_path / "broken.jsonl", [*SERVER.read_text().splitlines()[:4], "{oops"])
    results = import_openclaw(store, [LOGS, broken])
    assert [r.status for r in results] == ["imported", "failed"]
    assert "broken.jsonl:5: not a JSON object" in results[1].error
    assert results[0].events == len(parse_openclaw(LOGS).events)
    # nothing of the broken file reached the store
    assert [s.stream_id for s in store.streams(stream_type="session")] == [results[0].stream_id]
    before = store.read_stream(results[0].stream_id)
    again = import_openclaw(store, [FIXTURES])
    assert [(Path(r.path).name, r.status) for r in again] == [
        ("session-logs.jsonl", "already imported"),
        ("session-server.jsonl", "imported"),
    ]
    assert store.read_stream(results[0].stream_id) == before
    assert store.verify().ok


def test_another_file_claiming_an_imported_session_is_refused(
    store: SqlEventStore, tmp_path: Path
) -> None:
    import_openclaw(store, [LOGS])
    lines = LOGS.read_text().splitlines()
    longer = write_lines(tmp_path / "longer.jsonl", [*lines, lines[-2]])
    [result] = import_openclaw(store, [longer])
    assert result.status == "failed"
    assert "already in the store from another file" in result.error


def test_missing_path_is_an_input_error(store: SqlEventStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file or directory"):
        import_openclaw(store, [tmp_path / "nope.jsonl"])
