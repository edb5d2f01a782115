"""The reference pipeline's run modes, recorded for real against the scripted OpenAI server:
query-only lines, several intents per session, a query appended when a session completes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from cli import main
from ise_es.events import ModelCall, SessionEnded, SessionStarted, ToolCallFinished, UserTurn
from ise_es.store.sql import open_store
from tests.support.openai_server import ScriptedOpenAIServer, serve_conversations

AGENT, USER = "modes-agent", "modes-user"


def lines(path: Path, *records: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def record(db_url: str, server: ScriptedOpenAIServer, *args: str, user: bool = True) -> str:
    roles = ["--agent-model", AGENT, "--agent-base-url", server.base_url]
    if user:
        roles += ["--user-model", USER, "--user-base-url", server.base_url]
    result = CliRunner().invoke(main, ["record", "--db", db_url, *roles, *args])
    assert result.exit_code == 0, result.output
    return result.output


def sessions(db_url: str) -> list[list[Any]]:
    with open_store(db_url) as store:
        return [[e.data for e in store.read_stream(s.stream_id)] for s in store.streams("session-")]


def test_query_only_lines_go_straight_to_the_agent_with_no_simulator(
    db_url: str, tmp_path: Path
) -> None:
    with ScriptedOpenAIServer() as server:
        serve_conversations(server, agent_model=AGENT, user_model=USER)
        queries = lines(
            tmp_path / "q.jsonl",
            {"query": "How full is the disk?"},
            {"id": "q-shell", "question": "Which shell runs here?", "answer": "bash"},
        )
        record(db_url, server, "--intents", str(queries), user=False)
        assert server.requests_for(USER) == []
    by_intent = {e[0].intent_id: e for e in sessions(db_url) if isinstance(e[0], SessionStarted)}
    stable = [i for i in by_intent if i != "q-shell"]
    assert len(stable) == 1 and stable[0].startswith("q_"), "a missing id is a content digest"
    for events in by_intent.values():
        turns = [e for e in events if isinstance(e, UserTurn)]
        assert [t.completed for t in turns] == [False, True]
        assert isinstance(events[-1], SessionEnded) and events[-1].status == "completed"
        assert all(e.role == "agent" for e in events if isinstance(e, ModelCall))
        assert any(isinstance(e, ToolCallFinished) for e in events)
    shell = by_intent["q-shell"]
    assert next(t.text for t in shell if isinstance(t, UserTurn)) == "Which shell runs here?"
    assert shell[0].intent_record["answer"] == "bash"
    out = tmp_path / "middle.jsonl"
    args = ["project", "sft-jsonl", "--format", "middle", "-o", str(out), "--db", db_url]
    assert CliRunner().invoke(main, args).exit_code == 0
    rows = {r["intent_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert rows["q-shell"]["metadata"]["reference_answer"] == "bash"


def test_several_intents_per_session_each_to_its_own_completion(
    db_url: str, tmp_path: Path
) -> None:
    intents = lines(
        tmp_path / "i.jsonl",
        *({"id": f"i{k}", "natural_language_intent": f"Task number {k}"} for k in range(4)),
    )
    with ScriptedOpenAIServer() as server:
        serve_conversations(server, agent_model=AGENT, user_model=USER)
        record(db_url, server, "--intents", str(intents), "--intents-per-session", "2")
    recorded = sessions(db_url)
    assert len(recorded) == 2
    for events in recorded:
        start = events[0]
        assert isinstance(start, SessionStarted)
        first, second = (i["intent_id"] for i in start.intents)
        assert start.intent_id == f"{first}+{second}"
        turns = [(t.intent_id, t.completed) for t in events if isinstance(t, UserTurn)]
        assert turns == [(first, False), (first, True), (second, False), (second, True)]
        calls = [e for e in events if isinstance(e, ToolCallFinished)]
        assert len(calls) == 2, "both intents ran their command in the one session"
        assert isinstance(events[-1], SessionEnded) and events[-1].status == "completed"
    out = tmp_path / "middle.jsonl"
    args = ["project", "sft-jsonl", "--format", "middle", "-o", str(out), "--db", db_url]
    assert CliRunner().invoke(main, args).exit_code == 0
    row = json.loads(out.read_text().splitlines()[0])
    stats = CliRunner().invoke(main, ["project", "stats", "--json", "--db", db_url])
    assert stats.exit_code == 0, stats.output
    report = json.loads(stats.output)
    assert report["multi_intent_sessions"] == 2 and report["intents_per_session"] == {"2": 2}
    assert report["unique_intents"] == 4 and report["user_turns_per_intent"] == 1.0
    assert row["source_intent_count"] == 2
    assert row["session_finalized_by_intent_id"] == row["source_intent_ids"][1]
    assert row["metadata"]["user_turn_intents"] == row["source_intent_ids"]


def test_a_query_is_appended_when_a_session_completes(db_url: str, tmp_path: Path) -> None:
    intents = lines(tmp_path / "i.jsonl", {"id": "main", "natural_language_intent": "Do it"})
    pool = lines(
        tmp_path / "pool.jsonl",
        {"id": "extra-1", "query": "One more thing: what time is it?"},
        {"id": "extra-2", "query": "And the date?"},
    )
    with ScriptedOpenAIServer() as server:
        serve_conversations(server, agent_model=AGENT, user_model=USER)
        record(db_url, server, "--intents", str(intents), "--append-queries", str(pool))
    [events] = sessions(db_url)
    start = events[0]
    assert isinstance(start, SessionStarted)
    appended = start.intents[1]
    assert appended["intent_id"] in ("extra-1", "extra-2") and appended["simulated"] is False
    turns = [(t.intent_id, t.completed) for t in events if isinstance(t, UserTurn)]
    assert turns == [
        ("main", False),
        ("main", True),
        (appended["intent_id"], False),
        (appended["intent_id"], True),
    ]
    last_query = [t for t in events if isinstance(t, UserTurn) and not t.completed][-1]
    assert last_query.text == appended["natural_language_intent"]
    assert isinstance(events[-1], SessionEnded) and events[-1].status == "completed"


def test_append_queries_refuses_lines_that_are_not_queries(db_url: str, tmp_path: Path) -> None:
    intents = lines(tmp_path / "i.jsonl", {"id": "main", "natural_language_intent": "Do it"})
    pool = lines(tmp_path / "pool.jsonl", {"id": "x", "natural_language_intent": "Not a query"})
    args = ["record", "--db", db_url, "--intents", str(intents), "--append-queries", str(pool)]
    result = CliRunner().invoke(main, [*args, "--agent-model", AGENT, "--user-model", USER])
    assert result.exit_code == 2
    assert f"{pool}:1: --append-queries takes query-only lines" in result.output
