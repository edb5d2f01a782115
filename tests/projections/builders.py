"""Build session streams for projection tests: as StoredEvent lists (pure tests) or appended
to a real store."""

from __future__ import annotations

import json
import time
from typing import Any

from ise_es.events import (
    AgentMessage,
    Event,
    FileChange,
    FsDiff,
    ModelCall,
    OutputChunk,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UserTurn,
    event_type_of,
)
from ise_es.store.base import EventStore, StoredEvent

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "exec",
            "description": "Run a shell command.",
            "parameters": {
                "type": "object",
                "properties": {"command": {"type": "string"}, "workdir": {"type": "string"}},
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "write",
            "description": "Write a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
                "required": ["path", "content"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "read",
            "description": "Read a file.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
]


class SessionBuilder:
    """A session in the recorder's stream shape, written step by step."""

    def __init__(
        self,
        session_id: str,
        *,
        intent: str = "Tidy the logs folder and report its size.",
        intent_id: str | None = None,
        system_prompt: str = "You are a careful shell agent.",
        intent_record: dict[str, Any] | None = None,
        tool_schemas: list[dict[str, Any]] | None = None,
    ) -> None:
        self.session_id = session_id
        self.events: list[Event] = [
            SessionStarted(
                session_id=session_id,
                intent_id=intent_id or f"intent_{session_id}",
                intent=intent,
                intent_record=intent_record
                or {
                    "domains": ["file-ops", "reporting"],
                    "tasks": ["cleanup"],
                    "tools": ["exec", "write"],
                    "complexity": "medium",
                },
                persona={"name": "Ana", "role": "SRE"},
                system_prompt=system_prompt,
                tool_schemas=TOOL_SCHEMAS if tool_schemas is None else tool_schemas,
                sandbox_backend="local",
                template="empty",
            )
        ]
        self.turn = 0
        self.step = 0
        self.calls = 0

    def user(self, text: str, *, simulated: bool = True) -> SessionBuilder:
        self.turn += 1
        self.step = 0
        if simulated:
            self.events.append(
                ModelCall(
                    role="user", model="sim", usage=Usage(prompt_tokens=50, completion_tokens=10)
                )
            )
        self.events.append(UserTurn(turn=self.turn, text=text))
        return self

    def agent(
        self,
        text: str = "",
        *,
        reasoning: str | None = None,
        calls: list[tuple[str, Any]] | None = None,
        results: list[Any] | None = None,
    ) -> SessionBuilder:
        """One agent step; `calls` are (tool, arguments dict or raw string); `results` are
        result texts or (text, exit_code) pairs, one per call (None: the call gets no result)."""
        tool_calls = []
        for name, args in calls or []:
            self.calls += 1
            raw = args if isinstance(args, str) else json.dumps(args)
            tool_calls.append(
                ToolCall(id=f"call_{self.session_id}_{self.calls}", name=name, arguments=raw)
            )
        self.events.append(
            ModelCall(
                role="agent",
                model="agent-model",
                usage=Usage(prompt_tokens=1000, completion_tokens=100, total_tokens=1100),
                latency_ms=250.0,
            )
        )
        self.events.append(
            AgentMessage(
                turn=self.turn,
                step=self.step,
                text=text,
                reasoning=reasoning,
                tool_calls=tool_calls,
            )
        )
        self.step += 1
        outs = results if results is not None else ["ok"] * len(tool_calls)
        for index, (call, out) in enumerate(zip(tool_calls, outs, strict=False)):
            if out is None:
                continue
            text_out, code = (
                out if isinstance(out, tuple) else (out, 0 if call.name == "exec" else None)
            )
            self.events.append(
                ToolCallStarted(
                    call_id=call.id,
                    tool=call.name,
                    arguments=call.arguments,
                    turn=self.turn,
                    step=self.step - 1,
                    index=index,
                )
            )
            self.events.append(
                OutputChunk(call_id=call.id, stream="stdout", seq=0, data=text_out.encode())
            )
            self.events.append(
                ToolCallFinished(
                    call_id=call.id,
                    tool=call.name,
                    result_text=text_out,
                    exit_code=code,
                    duration_ms=12.0,
                )
            )
            if call.name == "write":
                self.events.append(
                    FsDiff(
                        call_id=call.id,
                        changes=[FileChange(path="notes.txt", kind="added", size=3)],
                    )
                )
        return self

    def end(
        self, status: str = "completed", *, closing: str | None = "Thanks, that is all."
    ) -> SessionBuilder:
        if closing is not None and status == "completed":
            self.events.append(UserTurn(turn=self.turn + 1, text=closing, completed=True))
        self.events.append(
            SessionEnded(status=status, user_turns=self.turn, tool_calls=self.calls)  # type: ignore[arg-type]
        )
        return self

    @property
    def stream_id(self) -> str:
        return f"session-{self.session_id}"

    def stored(self, start_position: int = 1) -> list[StoredEvent]:
        return [
            StoredEvent(
                position=start_position + i,
                stream_id=self.stream_id,
                version=i + 1,
                event_id=f"{self.session_id}-{i}",
                type=event_type_of(e),
                schema_version=1,
                recorded_at=1_700_000_000.0 + i,
                data=e,
                hash="0" * 64,
            )
            for i, e in enumerate(self.events)
        ]

    def append_to(self, store: EventStore) -> None:
        append_visible(store, self.stream_id, self.events, 0)


def append_visible(
    store: EventStore, stream_id: str, events: list[Event], expected_version: int
) -> None:
    """Append, then wait until catch-up readers can see the events.

    On PostgreSQL a catch-up reader takes only rows below the oldest running transaction of the
    whole server (see ise_es.store.sql), and other test runs share the server, so a row just
    committed may stay invisible to `read_all` for a moment.
    """
    store.append(stream_id, events, expected_version)
    last = store.read_stream(stream_id)[-1].position
    deadline = time.monotonic() + 60
    while not any(e.position == last for e in store.read_all(0, 1_000_000)):
        if time.monotonic() > deadline:
            raise AssertionError(f"event at position {last} never became visible to catch-up")
        time.sleep(0.05)


def simple_session(session_id: str, *, status: str = "completed", turns: int = 2) -> SessionBuilder:
    b = SessionBuilder(session_id)
    for k in range(turns):
        b.user(f"Please do part {k + 1} of the job in /tmp/work{k}.")
        b.agent(
            "Checking.",
            reasoning=f"I should list the folder for part {k + 1} first.",
            calls=[("exec", {"command": f"ls /tmp/work{k}"})],
            results=[("a.log\nb.log\n", 0)],
        )
        b.agent(f"Done with part {k + 1}: two logs found.", reasoning="Summarise the listing.")
    return b.end(status)
