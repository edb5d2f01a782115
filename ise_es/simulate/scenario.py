"""Scenario files: the offline `scripted` backend for both the user and the agent.

A scenario writes out what the models would have said, user turns and agent steps (tool calls
and final replies), so a session records with no model at all while every tool call still runs
for real in the sandbox. The scripted clients implement the same `ChatClient` protocol as the
OpenAI client, so the recorder, the agent loop and the user simulator's parser are the same code
path whichever backend drives them.

    name: fix-failing-test           # optional; defaults to the file name
    intent: The unit tests fail ...  # what the user wants
    template: pyproject              # workspace template
    persona: {name: ..., experience_level: Junior}   # optional
    turns:
      - user: Please run the tests.
        agent:
          - reasoning: Let me run them.          # optional
            text: ""                              # optional
            tool_calls:
              - exec: {command: python3 -m unittest}
          - expect_error: true                  # this step's bad calls are on purpose
            tool_calls:
              - name: exec                        # the long form, for malformed calls
                raw_arguments: '{"command": '
          - text: One test fails because ...     # a step without tool calls ends the turn
    done: All fixed, thanks.                      # the user's closing turn (completed = true)

A call to a tool that does not exist, or with arguments its schema refuses, is refused when the
file loads (a typo would otherwise record a session whose agent only ever saw errors), unless
its step says `expect_error: true`: then the bad call is played and the agent sees the error
result, as it would from a real model. Calls that are valid but fail when they run (a command
that exits 1, a bad cron expression) need no flag.

`--scenario NAME` also finds a shipped scenario by file name (`03-web-research`), and
`--scenario shipped` all of them (`shipped_scenarios_dir()`; they ship as package data).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import msgspec
import yaml

from ise_es.errors import InvalidInput, LLMError
from ise_es.events import ToolCall, Usage
from ise_es.llm.base import (
    ChatResult,
    Message,
    RequestInfo,
    RoleConfig,
    canonical_request,
    encode_request,
)
from ise_es.simulate.agent import SCRIPTED_BASE_URL

if TYPE_CHECKING:
    from ise_es.tools.base import ToolRegistry

__all__ = [
    "AgentStep",
    "Scenario",
    "ScriptedAgentClient",
    "ScriptedUserClient",
    "check_tool_calls",
    "load_scenario",
    "load_scenarios",
    "shipped_scenarios_dir",
]


class ScriptedToolCall(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    arguments: dict[str, Any] | None = None
    raw_arguments: str | None = None

    def encoded(self) -> str:
        if self.raw_arguments is not None:
            return self.raw_arguments
        return json.dumps(self.arguments or {}, ensure_ascii=False)


class AgentStep(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    text: str = ""
    reasoning: str | None = None
    tool_calls: list[ScriptedToolCall] = []
    expect_error: bool = False
    """The step makes a bad call on purpose (unknown tool, arguments the schema refuses)."""


class ScriptedTurn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user: str
    agent: list[AgentStep]


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    intent: str
    turns: list[ScriptedTurn]
    name: str = ""
    template: str = "empty"
    persona: dict[str, Any] | None = None
    done: str = "That is everything, thank you."
    intent_id: str = ""
    domains: list[str] = []
    tasks: list[str] = []
    complexity: str = "medium"

    @property
    def id(self) -> str:
        return self.intent_id or f"scenario-{self.name}"


def _normalise_calls(raw: Any) -> Any:
    """Accept the short form `- exec: {command: ls}` beside the long `{name, arguments}`."""
    if not isinstance(raw, dict):
        return raw
    for turn in raw.get("turns") or []:
        if not isinstance(turn, dict):
            continue
        for step in turn.get("agent") or []:
            if not isinstance(step, dict) or not isinstance(step.get("tool_calls"), list):
                continue
            calls = []
            for call in step["tool_calls"]:
                if isinstance(call, dict) and "name" not in call and len(call) == 1:
                    ((name, args),) = call.items()
                    call = {"name": name, "arguments": args}
                calls.append(call)
            step["tool_calls"] = calls
    return raw


def load_scenario(path: Path) -> Scenario:
    """Read and validate one scenario file.

    Raises:
        InvalidInput: naming the file and the offending field.
    """
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InvalidInput(f"{path}{where}: not valid YAML ({getattr(e, 'problem', e)})") from e
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read scenario ({e.strerror})") from e
    try:
        scenario = msgspec.convert(_normalise_calls(raw), Scenario)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"{path}: invalid scenario: {e}") from e
    if not scenario.turns:
        raise InvalidInput(f"{path}: invalid scenario: `turns` is empty - at `$.turns`")
    for t, turn in enumerate(scenario.turns):
        if not turn.agent or turn.agent[-1].tool_calls:
            raise InvalidInput(
                f"{path}: invalid scenario: the agent's last step must be a reply without tool "
                f"calls - at `$.turns[{t}].agent`"
            )
    check_tool_calls(path, scenario)
    return msgspec.structs.replace(scenario, name=scenario.name or path.stem)


def check_tool_calls(path: Path, scenario: Scenario) -> None:
    """Refuse a call to an unknown tool or with arguments the tool's schema refuses, unless
    its step says `expect_error: true`.

    Raises:
        InvalidInput: naming the file, the turn, the step and what is wrong.
    """
    from ise_es.tools.catalog import default_registry

    registry = default_registry()
    for t, turn in enumerate(scenario.turns):
        for k, step in enumerate(turn.agent):
            for c, call in enumerate(step.tool_calls):
                problem = None if step.expect_error else _call_problem(registry, call)
                if problem is not None:
                    raise InvalidInput(
                        f"{path}: turn {t + 1}, agent step {k + 1}, tool call {c + 1}: "
                        f"{problem}; fix the call, or add `expect_error: true` to the step "
                        "if the bad call is on purpose"
                    )


def _call_problem(registry: ToolRegistry, call: ScriptedToolCall) -> str | None:
    """Why the tool runner would refuse `call` before running it, or None."""
    from ise_es.tools.schema import ArgumentError, parse_arguments

    tool = registry.get(call.name)
    if tool is None:
        return f"unknown tool {call.name!r} (tools: {', '.join(registry.names())})"
    try:
        parse_arguments(call.encoded(), tool.parameters)
    except ArgumentError as e:
        return f"{call.name} refuses these arguments: {e}"
    return None


def shipped_scenarios_dir() -> Path:
    """The scenarios that ship inside the package (package data, also in a wheel install)."""
    return Path(__file__).resolve().parents[1] / "data" / "scenarios"


SHIPPED = "shipped"
"""`--scenario shipped`: every shipped scenario."""


def _find(target: Path) -> Path:
    """`target` itself when it exists, else a shipped scenario of that name (or `shipped`)."""
    if target.exists() or len(target.parts) != 1:
        return target
    shipped = shipped_scenarios_dir()
    if str(target) == SHIPPED:
        return shipped
    for candidate in (shipped / f"{target}.yaml", shipped / f"{target}.yml"):
        if candidate.is_file():
            return candidate
    return target


def load_scenarios(target: Path) -> list[tuple[Path, Scenario]]:
    """One file, or every *.yaml/*.yml in a directory (sorted); a name that is no path is
    looked up among the shipped scenarios (`shipped` for all of them).

    Raises:
        InvalidInput: no such file, or a file that is not a valid scenario (see `load_scenario`).
    """
    target = _find(target)
    if target.is_dir():
        files = sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
        if not files:
            raise InvalidInput(f"{target}: no scenario files (*.yaml) in this directory")
    elif target.exists():
        files = [target]
    else:
        names = sorted(p.stem for p in shipped_scenarios_dir().glob("*.y*ml"))
        raise InvalidInput(
            f"{target}: no such scenario file or directory (shipped scenarios: "
            f"{SHIPPED} for all, or {', '.join(names)})"
        )
    return [(f, load_scenario(f)) for f in files]


class _ScriptedClient:
    """Shared plumbing: a canonical request body and a ChatResult for each scripted reply."""

    def __init__(self, role: Literal["agent", "user"], scenario: Scenario) -> None:
        self._config = RoleConfig(
            role=role, model=f"scripted:{scenario.name}", base_url=SCRIPTED_BASE_URL
        )
        self.scenario = scenario

    @property
    def config(self) -> RoleConfig:
        return self._config

    def _result(
        self,
        messages: Sequence[Message],
        tools: Sequence[Mapping[str, Any]] | None,
        response_format: Mapping[str, Any] | None,
        *,
        content: str,
        reasoning: str | None = None,
        tool_calls: list[ToolCall] | None = None,
    ) -> ChatResult:
        body = encode_request(
            canonical_request(self._config, messages, tools=tools, response_format=response_format)
        )
        response: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning is not None:
            response["reasoning_content"] = reasoning
        if tool_calls:
            response["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in tool_calls
            ]
        return ChatResult(
            request=RequestInfo(
                role=self._config.role,
                model=self._config.model,
                base_url=SCRIPTED_BASE_URL,
                parameters={},
                body=body,
            ),
            content=content,
            reasoning=reasoning,
            tool_calls=tool_calls or [],
            finish_reason="tool_calls" if tool_calls else "stop",
            usage=Usage(),
            latency_ms=0.0,
            retries=[],
            response=response,
            response_model=self._config.model,
        )

    def close(self) -> None:
        pass


class ScriptedAgentClient(_ScriptedClient):
    """Plays the scenario's agent steps in order, one per request."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__("agent", scenario)
        self._steps = [(t, s) for t, turn in enumerate(scenario.turns) for s in turn.agent]
        self._next = 0
        self._calls = 0

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        if self._next >= len(self._steps):
            raise LLMError(f"scenario {self.scenario.name}: the agent has no scripted step left")
        _, step = self._steps[self._next]
        self._next += 1
        calls = []
        for call in step.tool_calls:
            self._calls += 1
            calls.append(
                ToolCall(id=f"call_{self._calls:024x}", name=call.name, arguments=call.encoded())
            )
        return self._result(
            messages,
            tools,
            response_format,
            content=step.text,
            reasoning=step.reasoning,
            tool_calls=calls,
        )


class ScriptedUserClient(_ScriptedClient):
    """Answers the user simulator's requests with the scenario's user turns, as the JSON the
    simulator's parser expects, then the closing turn."""

    def __init__(self, scenario: Scenario) -> None:
        super().__init__("user", scenario)
        self._next = 0

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        turns = self.scenario.turns
        if self._next < len(turns):
            reply = {"completed": False, "query": turns[self._next].user, "reason": "scripted turn"}
        else:
            reply = {"completed": True, "query": self.scenario.done, "reason": "scripted end"}
        self._next += 1
        return self._result(messages, tools, response_format, content=json.dumps(reply))
