"""The agent loop: for one user turn, call the model, run its tool calls, repeat until it
answers without tool calls or reaches the step limit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ise_es.errors import LLMError
from ise_es.events import AgentMessage, Event, ModelCall
from ise_es.llm.base import ChatClient, ChatResult, failed_model_call
from ise_es.tools.runner import ToolRunner

__all__ = ["SCRIPTED_BASE_URL", "AgentLoop", "TurnOutcome", "recorded_call"]

SCRIPTED_BASE_URL = "scripted:"
"""The base_url of the scripted clients (scenario files), which never touch a network."""

STAGNATION_REPEATS = 3
"""The same tool with byte-identical arguments this many times running means the agent is stuck."""


@dataclass
class TurnOutcome:
    """How an agent turn ended: `done` (a final reply), or why the session must stop."""

    status: str = "done"
    """done | step_cap (the turn ends, the session goes on) | stalled | error | interrupted"""
    reason: str = ""
    tool_calls: int = 0
    infrastructure: bool = False
    """The turn stopped for a reason outside the model's behaviour (its endpoint failed after
    retries, or the recording was stopped): the work queue records the intent again."""


@dataclass
class AgentLoop:
    """Drives the agent for a session; keeps the conversation the model sees.

    `record(events, blobs)` appends events (with the blobs they cite) to the session stream.
    """

    client: ChatClient
    runner: ToolRunner
    system_prompt: str
    record: Callable[[Sequence[Event], Sequence[bytes]], None]
    max_steps_per_turn: int = 30
    cancel: threading.Event | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    calls_made: int = 0
    _recent: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.messages:
            self.messages.append({"role": "system", "content": self.system_prompt})

    def run_turn(self, turn: int, user_text: str) -> TurnOutcome:
        self.messages.append({"role": "user", "content": user_text})
        outcome = TurnOutcome()
        for step in range(self.max_steps_per_turn):
            if self.cancel is not None and self.cancel.is_set():
                return TurnOutcome(
                    "interrupted", "recording stopped", outcome.tool_calls, infrastructure=True
                )
            try:
                result = self.client.complete(self.messages, tools=self.runner.schemas())
            except LLMError as e:
                body = getattr(e.call, "body", None)
                self.record([failed_model_call(e)], [body] if isinstance(body, bytes) else [])
                return TurnOutcome(
                    "error", f"agent model call failed: {e}", outcome.tool_calls, True
                )
            call_event = recorded_call(result)
            message = AgentMessage(
                turn=turn,
                step=step,
                text=result.content,
                reasoning=result.reasoning,
                tool_calls=list(result.tool_calls),
            )
            self.record([call_event, message], [result.request_body])
            self.messages.append(result.assistant_message())
            if not result.tool_calls:
                return outcome
            for call in result.tool_calls:
                finished = self.runner.run(call, turn=turn, step=step, index=self.calls_made)
                self.calls_made += 1
                outcome.tool_calls += 1
                self.messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": finished.result_text}
                )
                self._recent = [*self._recent, (call.name, call.arguments)][-STAGNATION_REPEATS:]
                if len(self._recent) == STAGNATION_REPEATS and len(set(self._recent)) == 1:
                    return TurnOutcome(
                        "stalled",
                        f"{call.name} called {STAGNATION_REPEATS} times running with identical "
                        "arguments",
                        outcome.tool_calls,
                    )
        return TurnOutcome(
            "step_cap",
            f"the agent made {self.max_steps_per_turn} model steps without a final reply",
            outcome.tool_calls,
        )


def recorded_call(result: ChatResult) -> ModelCall:
    """The ModelCall event for a result; scripted replies are not calls on the wire, and say so."""
    call = result.model_call()
    if result.request.base_url == SCRIPTED_BASE_URL:
        return msgspec.structs.replace(call, backend="scripted", base_url=None)
    return call
