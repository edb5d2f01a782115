"""The role-locked user simulator, driven through a real client against the scripted server."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest

from ise_es.events import (
    AgentMessage,
    Event,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    UserTurn,
    encode_checked,
)
from ise_es.llm import JsonMode, OpenAIChatClient, RoleConfig
from ise_es.simulate.prompting import load_prompt
from ise_es.simulate.user_simulator import (
    OUTPUT_SCHEMA,
    DialogueEntry,
    SimulatorOutput,
    SimulatorOutputError,
    UserSimulator,
    parse_simulator_output,
    register_for,
    visible_dialogue,
)
from tests.support.openai_server import RecordedRequest, Reply, ScriptedOpenAIServer

MODEL = "user-sim"
INTENT = "Set up a Python project in the workspace that parses access.log and counts 404s."
SENIOR = {
    "name": "Dana Ruiz",
    "role": "SRE",
    "industry": "fintech",
    "expertise": ["linux", "observability"],
    "experience_level": "Senior",
    "communication_style": "Direct",
}
GOOD = '{"completed": false, "query": "Create parse.py that counts 404s.", "reason": "first step"}'

MakeSimulator = Callable[..., UserSimulator]


@pytest.fixture
def make_simulator(openai_server: ScriptedOpenAIServer) -> Iterator[MakeSimulator]:
    clients: list[OpenAIChatClient] = []

    def make(
        *,
        persona: dict[str, Any] | None = None,
        json_mode: JsonMode = "none",
        base_url: str | None = None,
        max_turns: int = 12,
    ) -> UserSimulator:
        config = RoleConfig(
            role="user",
            model=MODEL,
            base_url=base_url or openai_server.base_url,
            json_mode=json_mode,
            max_retries=1,
            timeout_s=5.0,
        )
        client = OpenAIChatClient(config, environ={}, sleep=lambda s: None, rng=random.Random(0))
        clients.append(client)
        return UserSimulator(
            client,
            persona=SENIOR if persona is None else persona,
            intent=INTENT,
            max_turns=max_turns,
        )

    yield make
    for client in clients:
        client.close()


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        GOOD,
        f"```json\n{GOOD}\n```",
        f"```\n{GOOD}\n```",
        f"Here is my next message:\n{GOOD}\nThanks.",
        f"<think>the assistant has not started</think>{GOOD}",
    ],
    ids=["bare", "json-fence", "plain-fence", "prose-around", "inline-think"],
)
def test_parse_accepts(text: str) -> None:
    assert parse_simulator_output(text) == SimulatorOutput(
        completed=False, query="Create parse.py that counts 404s.", reason="first step"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("Please create parse.py.", "not a JSON object"),
        ('{"completed": "no", "query": "x", "reason": "r"}', r"\$\.completed"),
        ('{"completed": false, "query": "x"}', "reason"),
        ('{"completed": false, "query": "x", "reason": "r", "mood": "ok"}', "mood"),
        ('{"completed": false, "query": "  ", "reason": "r"}', "query.*empty"),
        (
            '{"completed": false, "query": "Done! How can I help you next?", "reason": "r"}',
            "assistant",
        ),
        ("[1, 2]", "schema"),
    ],
    ids=[
        "empty",
        "prose",
        "wrong-type",
        "missing",
        "extra-field",
        "empty-query",
        "role-flip",
        "array",
    ],
)
def test_parse_rejects(text: str, problem: str) -> None:
    with pytest.raises(SimulatorOutputError, match=problem):
        parse_simulator_output(text)


def test_completed_turn_may_have_an_empty_query() -> None:
    output = parse_simulator_output('{"completed": true, "query": "", "reason": "all done"}')

    assert output.completed and output.query == ""


def test_output_schema_matches_the_struct() -> None:
    generated = msgspec.json.schema(SimulatorOutput)["$defs"]["SimulatorOutput"]
    generated.pop("title")
    generated.pop("description")

    assert generated == OUTPUT_SCHEMA


# -- turns through the server ------------------------------------------------------------------


def test_valid_reply_becomes_a_user_turn(
    openai_server: ScriptedOpenAIServer, make_simulator: MakeSimulator
) -> None:
    openai_server.script(MODEL, Reply(content=GOOD))
    simulator = make_simulator()

    turn = simulator.next_turn([])

    assert turn.ok
    assert (turn.turn, turn.completed, turn.query) == (
        1,
        False,
        "Create parse.py that counts 404s.",
    )
    assert turn.raw == GOOD
    assert len(turn.calls) == 1
    event = turn.user_turn()
    encode_checked(event)
    assert event == UserTurn(
        turn=1,
        text="Create parse.py that counts 404s.",
        completed=False,
        reason="first step",
        raw=GOOD,
    )
    [request] = openai_server.requests
    assert request.messages[0] == {"role": "system", "content": simulator.system_prompt}
    assert "opening message" in request.messages[1]["content"]


def test_invalid_reply_is_repaired_once(
    openai_server: ScriptedOpenAIServer, make_simulator: MakeSimulator
) -> None:
    bad = '{"completed": "maybe", "query": "x", "reason": "r"}'
    openai_server.script(MODEL, Reply(content=bad), Reply(content=f"```json\n{GOOD}\n```"))

    turn = make_simulator().next_turn([])

    assert turn.ok
    assert turn.query == "Create parse.py that counts 404s."
    assert turn.raw_attempts == [bad, f"```json\n{GOOD}\n```"]
    assert len(turn.calls) == 2
    repair = openai_server.requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert repair[-1]["role"] == "user"
    assert "$.completed" in repair[-1]["content"]


def test_unrepairable_reply_fails_the_turn_with_the_raw_text(
    openai_server: ScriptedOpenAIServer, make_simulator: MakeSimulator
) -> None:
    openai_server.script(
        MODEL,
        Reply(content="Sure! I can create parse.py for you."),
        Reply(content="I will now write the parser."),
    )

    turn = make_simulator().next_turn([])

    assert not turn.ok
    assert turn.error is not None and "not a JSON object" in turn.error
    assert turn.raw == "I will now write the parser."
    assert turn.raw_attempts == [
        "Sure! I can create parse.py for you.",
        "I will now write the parser.",
    ]
    assert len(turn.calls) == 2
    assert len(openai_server.requests) == 2
    with pytest.raises(ValueError, match="failed"):
        turn.user_turn()


def test_unreachable_endpoint_fails_the_turn_with_the_llm_error(
    refused_base_url: str, make_simulator: MakeSimulator
) -> None:
    turn = make_simulator(base_url=refused_base_url).next_turn([])

    assert not turn.ok
    assert turn.llm_error is not None
    assert turn.llm_error.endpoint == refused_base_url
    assert len(turn.llm_error.retries) == 2
    assert turn.calls == []


@pytest.mark.parametrize(
    ("json_mode", "expected_type"),
    [("json_schema", "json_schema"), ("json_object", "json_object"), ("none", None)],
)
def test_structured_output_follows_the_role_config(
    openai_server: ScriptedOpenAIServer,
    make_simulator: MakeSimulator,
    json_mode: JsonMode,
    expected_type: str | None,
) -> None:
    openai_server.script(MODEL, Reply(content=GOOD))

    make_simulator(json_mode=json_mode).next_turn([])

    sent = openai_server.requests[0].response_format
    assert (sent or {}).get("type") == expected_type
    if expected_type == "json_schema":
        assert sent is not None
        assert sent["json_schema"]["schema"] == OUTPUT_SCHEMA


# -- register matching -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "register"),
    [
        ("Junior", "full"),
        ("Mid-level", "balanced"),
        ("mid level", "balanced"),
        ("Senior", "brief"),
        ("Expert", "brief"),
        ("EXECUTIVE", "brief"),
        ("Wizard", "balanced"),
        (None, "balanced"),
    ],
)
def test_register_for_experience_level(level: str | None, register: str) -> None:
    assert register_for(level) == register


@pytest.mark.parametrize(
    ("level", "register_file"),
    [
        ("Junior", "register_full.md"),
        ("Mid-level", "register_balanced.md"),
        ("Expert", "register_brief.md"),
    ],
)
def test_system_prompt_carries_the_register_and_persona(
    make_simulator: MakeSimulator, level: str, register_file: str
) -> None:
    simulator = make_simulator(persona={**SENIOR, "experience_level": level})

    prompt = simulator.system_prompt

    assert load_prompt(register_file) in prompt
    others = {"register_full.md", "register_balanced.md", "register_brief.md"} - {register_file}
    assert not any(load_prompt(name) in prompt for name in others)
    assert INTENT in prompt
    assert "Dana Ruiz" in prompt and "Direct" in prompt and "linux, observability" in prompt
    assert "$" not in prompt


def test_system_prompt_without_persona(make_simulator: MakeSimulator) -> None:
    simulator = make_simulator(persona={})

    assert simulator.register == "balanced"
    assert "ordinary user" in simulator.system_prompt


# -- responsive conditioning: what the simulator may see ---------------------------------------


def _session_events() -> list[Event]:
    return [
        UserTurn(turn=1, text="Create parse.py that counts 404s.", raw=GOOD),
        AgentMessage(
            turn=1,
            step=0,
            text="",
            reasoning="SECRET-REASONING-FIELD",
            tool_calls=[ToolCall(id="c1", name="write", arguments='{"path": "parse.py"}')],
        ),
        ToolCallStarted(call_id="c1", tool="write", arguments='{"path": "parse.py"}'),
        ToolCallFinished(call_id="c1", tool="write", result_text="SECRET-RAW-TOOL-OUTPUT"),
        AgentMessage(
            turn=1,
            step=1,
            text="<think>SECRET-INLINE-THINK</think>I wrote parse.py; it found 12 404s.",
            reasoning="SECRET-REASONING-FINAL",
        ),
        UserTurn(turn=2, text="Now sort them by path.", raw="{}"),
        AgentMessage(turn=2, step=0, text="Sorted: /a (7), /b (5).", reasoning="SECRET-2"),
    ]


def test_visible_dialogue_keeps_only_what_the_user_saw() -> None:
    assert visible_dialogue(_session_events()) == [
        DialogueEntry("user", "Create parse.py that counts 404s."),
        DialogueEntry("assistant", "I wrote parse.py; it found 12 404s."),
        DialogueEntry("user", "Now sort them by path."),
        DialogueEntry("assistant", "Sorted: /a (7), /b (5)."),
    ]


def test_visible_dialogue_marks_a_turn_the_agent_never_answered() -> None:
    events: list[Event] = [
        UserTurn(turn=1, text="Do it."),
        AgentMessage(turn=1, step=0, tool_calls=[ToolCall(id="c", name="exec", arguments="{}")]),
        UserTurn(turn=2, text="Hello?"),
    ]

    assert visible_dialogue(events) == [
        DialogueEntry("user", "Do it."),
        DialogueEntry("assistant", "(no reply)"),
        DialogueEntry("user", "Hello?"),
    ]


def test_agent_reasoning_and_tool_output_never_reach_the_simulator(
    openai_server: ScriptedOpenAIServer, make_simulator: MakeSimulator
) -> None:
    seen: list[RecordedRequest] = []

    def answer(request: RecordedRequest) -> Reply:
        seen.append(request)
        return Reply(content='{"completed": true, "query": "", "reason": "all delivered"}')

    openai_server.handle(MODEL, answer)
    dialogue = visible_dialogue(_session_events())
    # A caller that builds the dialogue by hand and forgets to strip inline reasoning.
    dialogue.append(DialogueEntry("assistant", "<think>SECRET-HAND-BUILT</think>Anything else?"))

    turn = make_simulator().next_turn(dialogue)

    assert turn.ok and turn.completed
    body = seen[0].body.decode()
    assert "SECRET" not in body
    assert "I wrote parse.py; it found 12 404s." in body
    assert "Sorted: /a (7), /b (5)." in body
    assert json.loads(seen[0].body)["messages"][1]["content"].count("[Assistant]") == 3


def test_scripted_user_turn_helper_satisfies_the_contract(
    openai_server: ScriptedOpenAIServer, make_simulator: MakeSimulator
) -> None:
    openai_server.script(MODEL, Reply.user_turn("List the logs.", reason="start"))

    turn = make_simulator().next_turn([])

    assert (turn.ok, turn.query, turn.reason) == (True, "List the logs.", "start")


def test_turn_number_and_last_turn_instruction(
    openai_server: ScriptedOpenAIServer, make_simulator: MakeSimulator
) -> None:
    openai_server.script(MODEL, Reply(content=GOOD))
    dialogue = [DialogueEntry("user", "a"), DialogueEntry("assistant", "b")]

    turn = make_simulator(max_turns=2).next_turn(dialogue)

    assert turn.turn == 2
    content = openai_server.requests[0].messages[1]["content"]
    assert "message 2 of at most 2" in content
    assert "last message" in content


def test_default_agent_system_prompt_names_the_workspace_and_tools() -> None:
    from ise_es.simulate.prompting import default_agent_system_prompt

    prompt = default_agent_system_prompt()

    assert "/tmp/workspace" in prompt
    for tool in ("exec", "process", "read", "write", "edit", "apply_patch", "web_fetch", "cron"):
        assert f"- {tool}" in prompt or f", {tool}" in prompt
