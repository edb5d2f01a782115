"""The entries of one OpenClaw session file mapped to events (`openclaw.py` reads the file,
checks its lines and builds the session around these events; its docstring has the mapping).

Each event's id derives from the file's sha256, the entry's line and the event's part within
it, so importing the same file again appends nothing.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from ise_es.errors import InvalidInput
from ise_es.events import Event, ModelCall, ToolCall, ToolCallFinished, Usage
from ise_es.projections.importing import StreamWalk, derived_id
from ise_es.projections.session import outcome_failed
from ise_es.store.base import NewEvent

__all__ = ["ENVELOPE", "EntryMapper", "epoch_ms", "event_id", "strip_envelope"]

ENVELOPE = re.compile(
    r"^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d{2}-\d{2} \d{1,2}:\d{2}(?::\d{2})?"
    r"(?: (?:GMT|UTC)(?:[+-]\d{1,2}(?::?\d{2})?)?| [A-Z]{2,5})?\] "
)


def strip_envelope(text: str) -> str:
    """Remove the client's timestamp envelope, which the user did not write."""
    return ENVELOPE.sub("", text, count=1)


def event_id(digest: str, line: int, part: int) -> str:
    """The id of the event `part` of the entry at `line` of the file of `digest`."""
    return derived_id("openclaw", digest, line, part)


def epoch_ms(value: Any) -> float | None:
    """Epoch milliseconds of a number or an ISO 8601 string (None: neither)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return None
    return None


def _texts(content: Any, kind: str = "text") -> list[str]:
    if isinstance(content, str):
        return [content] if kind == "text" else []
    if not isinstance(content, list):
        return []
    return [
        str(block.get(kind, ""))
        for block in content
        if isinstance(block, dict) and block.get("type") == kind
    ]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _usage(usage: dict[str, Any]) -> Usage:
    """OpenClaw counts cached prompt tokens apart; a prompt is all three."""
    prompt = sum(_int(usage.get(k)) or 0 for k in ("input", "cacheRead", "cacheWrite"))
    completion = _int(usage.get("output")) or 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(usage.get("totalTokens")) or prompt + completion,
    )


def _latency_ms(entry: dict[str, Any], message: dict[str, Any]) -> float:
    """From the request's start (the message's time) to the entry's append."""
    started_ms = epoch_ms(message.get("timestamp"))
    appended_ms = epoch_ms(entry.get("timestamp"))
    if started_ms is not None and appended_ms is not None and appended_ms >= started_ms:
        return appended_ms - started_ms
    return 0.0


class EntryMapper:
    """Turns the entries of one file into events, remembering where each came from."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.events: list[NewEvent] = []
        self.walk = StreamWalk()
        self.n_calls = 0
        self.first_user: str | None = None
        self.models: list[str] = []
        self.model_changes: list[dict[str, Any]] = []
        self.thinking_levels: list[str] = []
        self.custom: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()
        self.arguments: dict[str, list[Any]] = {}
        """tool name -> the arguments of each call to it, in the order of first use"""
        self.last_time: float | None = None

    @property
    def turn(self) -> int:
        return self.walk.turn

    def add(self, line: int, part: int, event: Event) -> None:
        self.events.append(NewEvent(event, event_id=event_id(self.digest, line, part)))

    def fail(self, line: int, message: str) -> InvalidInput:
        return InvalidInput(f"{self.path}:{line}: {message}")

    def entry(self, line: int, entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        when = epoch_ms(entry.get("timestamp"))
        if when is not None:
            self.last_time = when / 1000
        if kind == "message":
            self.message(line, entry)
        elif kind == "model_change":
            self.model_changes.append(
                {"provider": entry.get("provider"), "modelId": entry.get("modelId")}
            )
        elif kind == "thinking_level_change":
            self.thinking_levels.append(str(entry.get("thinkingLevel")))
        elif kind == "custom":
            self.custom[str(entry.get("customType"))] += 1
        else:
            self.ignored[str(kind)] += 1

    def message(self, line: int, entry: dict[str, Any]) -> None:
        message = entry.get("message")
        if not isinstance(message, dict):
            raise self.fail(line, "message entry without a 'message' object")
        role = message.get("role")
        if role == "user":
            self.user(line, message)
        elif role == "assistant":
            self.assistant(line, entry, message)
        elif role == "toolResult":
            self.tool_result(line, message)
        else:
            self.ignored[f"message:{role}"] += 1

    def user(self, line: int, message: dict[str, Any]) -> None:
        text = strip_envelope("\n".join(_texts(message.get("content"))))
        if self.first_user is None:
            self.first_user = text
        self.add(line, 0, self.walk.user_turn(text))

    def tool_calls(self, line: int, blocks: list[Any]) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for block in blocks:
            if not isinstance(block, dict) or block.get("type") != "toolCall":
                continue
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise self.fail(line, "toolCall block without a string 'id' and 'name'")
            args = block.get("arguments")
            raw = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            call = ToolCall(id=call_id, name=name, arguments=raw)
            self.arguments.setdefault(name, []).append(args)
            calls.append(call)
            self.walk.remember(call, self.n_calls)
            self.n_calls += 1
        return calls

    def model_call(
        self, entry: dict[str, Any], message: dict[str, Any], blocks: list[Any]
    ) -> ModelCall:
        usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        model = str(message.get("model") or "")
        if model and model not in self.models:
            self.models.append(model)
        return ModelCall(
            role="agent",
            model=model,
            backend="openclaw",
            parameters={"api": message.get("api"), "provider": message.get("provider")},
            response={"content": blocks, "stopReason": message.get("stopReason")},
            finish_reason=message.get("stopReason"),
            usage=_usage(usage),
            latency_ms=_latency_ms(entry, message),
        )

    def assistant(self, line: int, entry: dict[str, Any], message: dict[str, Any]) -> None:
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
        calls = self.tool_calls(line, blocks)
        self.add(line, 0, self.model_call(entry, message, blocks))
        thinking = [t for t in _texts(blocks, "thinking") if t]
        text = "\n\n".join(t for t in _texts(content) if t)
        reasoning = "\n\n".join(thinking) if thinking else None
        self.add(line, 1, self.walk.agent_message(text, reasoning, calls))

    def tool_result(self, line: int, message: dict[str, Any]) -> None:
        call_id = message.get("toolCallId")
        if not isinstance(call_id, str):
            raise self.fail(line, "toolResult without a string 'toolCallId'")
        tool = str(message.get("toolName") or "")
        raw_details = message.get("details")
        details: dict[str, Any] = dict(raw_details) if isinstance(raw_details, dict) else {}
        is_error = bool(message.get("isError", False))
        details["isError"] = is_error
        started = self.walk.started(call_id)
        if started is not None:
            self.add(line, 0, started)
        error = details.get("error")
        duration = details.get("durationMs")
        result_text = "\n".join(_texts(message.get("content")))
        self.add(
            line,
            1,
            ToolCallFinished(
                call_id=call_id,
                tool=tool or self.walk.call_name(call_id),
                result_text=result_text,
                is_error=outcome_failed(
                    is_error=is_error, details=details, result_text=result_text
                ),
                exit_code=_int(details.get("exitCode")),
                timed_out=str(details.get("status", "")).lower() in ("timeout", "timed_out"),
                duration_ms=float(duration) if isinstance(duration, int | float) else 0.0,
                error=error if isinstance(error, str) else None,
                details=details,
            ),
        )
