"""A session as a flat list of chat messages, before any trainer format is applied.

The rules every format shares live here: the simulator's closing turn is not a user message, a
tool message's content is exactly `ToolCallFinished.result_text`, a tool result's success comes
from every failure signal (`call_failed`), and `redact` applies to every string a sample
carries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ise_es.events import ModelCall, ToolCall, ToolCallFinished, UserTurn
from ise_es.projections.secrets import redact as redact_secrets
from ise_es.projections.session import AgentStep, SessionView, call_failed, parse_json

__all__ = ["Msg", "conversation", "malformed_arguments", "system_prompt", "turn_spans"]


def malformed_arguments(arguments: str) -> bool:
    """Whether a tool call's raw arguments are not a JSON object, i.e. the model emitted a call
    no tool could take (the runner answered "arguments are not valid JSON"). An empty string
    counts as `{}`, as the runner reads it. Such a call rendered by a chat template is not
    JSON, so the exports never train on it (`--malformed`)."""
    text = arguments.strip()
    if not text:
        return False
    try:
        parsed = parse_json(text)
    except ValueError:
        return True
    return not isinstance(parsed, dict)


@dataclass(slots=True)
class Msg:
    role: Literal["user", "assistant", "tool"]
    content: str
    turn: int
    reasoning: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    call_id: str = ""
    name: str = ""
    """The tool's name (tool messages)."""
    finished: ToolCallFinished | None = None
    model_call: ModelCall | None = None

    @property
    def success(self) -> bool:
        """Whether a tool message's call succeeded (`call_failed`), worked out when read: the
        openai format never reads it (True for user and assistant messages)."""
        return self.finished is None or not call_failed(self.finished)


def _identity(text: str) -> str:
    return text


def system_prompt(view: SessionView, *, redact: bool = False) -> str:
    text = view.started.system_prompt if view.started else ""
    return redact_secrets(text) if redact else text


def conversation(view: SessionView, *, redact: bool = False) -> list[Msg]:
    """The session's user, assistant and tool messages in log order (no system message)."""
    clean: Callable[[str], str] = redact_secrets if redact else _identity
    names: dict[str, str] = {}
    out: list[Msg] = []
    turn = 0
    for entry in view.entries:
        if isinstance(entry, UserTurn):
            turn = entry.turn
            out.append(Msg("user", clean(entry.text), turn))
        elif isinstance(entry, AgentStep):
            message = entry.message
            calls = (
                [
                    ToolCall(id=c.id, name=c.name, arguments=clean(c.arguments))
                    for c in message.tool_calls
                ]
                if redact
                else list(message.tool_calls)  # the same values: no copy of each call
            )
            for c in calls:
                names[c.id] = c.name
            reasoning = clean(message.reasoning) if message.reasoning else None
            out.append(
                Msg(
                    "assistant",
                    clean(message.text),
                    message.turn or turn,
                    reasoning=reasoning,
                    tool_calls=calls,
                    model_call=entry.model_call,
                )
            )
        else:
            out.append(
                Msg(
                    "tool",
                    clean(entry.result_text),
                    turn,
                    call_id=entry.call_id,
                    name=entry.tool or names.get(entry.call_id, ""),
                    finished=entry,
                )
            )
    return out


def turn_spans(messages: list[Msg]) -> list[tuple[int, int]]:
    """(start, end) index ranges of each user turn: the user message and everything up to the
    next user message. Only turns the agent answered (at least one assistant message)."""
    starts = [i for i, m in enumerate(messages) if m.role == "user"]
    spans: list[tuple[int, int]] = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(messages)
        if any(m.role == "assistant" for m in messages[start:end]):
            spans.append((start, end))
    return spans
