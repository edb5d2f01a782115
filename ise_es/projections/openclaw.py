"""`ise-es import openclaw`: OpenClaw session JSONL files into session streams.

One file is one session stream (`session-<header uuid, hex>`), appended in ONE call, so a file
is imported whole or not at all: every line is parsed and mapped before anything is written,
and a line that does not parse is reported with file and line. Event ids are derived from the
file's sha256 and the line number, so importing the same file again is a no-op; a different
file claiming an already imported session is refused (the log is append-only).

Mapping (the reference converter's known losses are not repeated):
- user message -> UserTurn; the client envelope (`[Thu 2026-03-26 21:29 GMT+8] `) is stripped.
- assistant message -> ModelCall(role=agent: usage, latency, and the content blocks in their
  original order under `response`) + AgentMessage (text, reasoning from thinking blocks, tool
  calls). Messages holding only thinking are kept.
- toolResult -> ToolCallStarted + ToolCallFinished; the outcome comes from `isError` AND
  `details` (non-zero exitCode, status error/failed): `is_error` is that derived outcome and
  `details` is the original plus the raw `isError`.
- session header, model/thinking-level changes and custom entries -> SessionStarted
  (provenance: file name, digest, cwd, ...). The file records no tool schemas, so the
  reference OpenClaw tool set (FORMATS.md section 1) is attached, and provenance says so.
- The session ends `completed`: the reference archived only finished sessions.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import InvalidInput
from ise_es.events import (
    AgentMessage,
    Event,
    ModelCall,
    ModelSpec,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UserTurn,
)
from ise_es.projections.session import FAILED_STATUSES
from ise_es.store.base import EventStore, NewEvent

__all__ = [
    "ENVELOPE",
    "FileResult",
    "ParsedSession",
    "import_openclaw",
    "openclaw_files",
    "parse_openclaw",
    "reference_tool_schemas",
    "strip_envelope",
]

ENVELOPE = re.compile(
    r"^\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d{2}-\d{2} \d{1,2}:\d{2}(?::\d{2})?"
    r"(?: (?:GMT|UTC)(?:[+-]\d{1,2}(?::?\d{2})?)?| [A-Z]{2,5})?\] "
)
IMPORTER = "ise-es import openclaw"


def strip_envelope(text: str) -> str:
    """Remove the client's timestamp envelope, which the user did not write."""
    return ENVELOPE.sub("", text, count=1)


def reference_tool_schemas() -> list[dict[str, Any]]:
    raw = resources.files("ise_es.projections").joinpath("openclaw_tools.json").read_text()
    schemas: list[dict[str, Any]] = json.loads(raw)
    return schemas


class ParsedSession(msgspec.Struct, kw_only=True):
    session_id: str
    stream_id: str
    source: str
    digest: str
    events: list[NewEvent]
    user_turns: int
    tool_calls: int


class FileResult(msgspec.Struct, kw_only=True):
    path: str
    stream_id: str = ""
    status: str
    """imported | already imported | failed"""
    events: int = 0
    error: str = ""


def _event_id(digest: str, line: int, part: int) -> str:
    return hashlib.sha256(f"openclaw:{digest}:{line}:{part}".encode()).hexdigest()[:32]


def _epoch_ms(value: Any) -> float | None:
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


def _failed(is_error: bool, details: dict[str, Any]) -> bool:
    status = details.get("status")
    if isinstance(status, str) and status.lower() in FAILED_STATUSES:
        return True
    code = _int(details.get("exitCode"))
    return is_error or (code is not None and code != 0)


class _Mapper:
    """Turns the entries of one file into events, remembering where each came from."""

    def __init__(self, path: Path, digest: str) -> None:
        self.path = path
        self.digest = digest
        self.events: list[NewEvent] = []
        self.turn = 0
        self.step = 0
        self.calls: dict[str, tuple[ToolCall, int, int, int]] = {}
        """call id -> (call, turn, step, session-wide index)"""
        self.n_calls = 0
        self.first_user: str | None = None
        self.models: list[str] = []
        self.model_changes: list[dict[str, Any]] = []
        self.thinking_levels: list[str] = []
        self.custom: Counter[str] = Counter()
        self.ignored: Counter[str] = Counter()

    def add(self, line: int, part: int, event: Event) -> None:
        self.events.append(NewEvent(event, event_id=_event_id(self.digest, line, part)))

    def fail(self, line: int, message: str) -> InvalidInput:
        return InvalidInput(f"{self.path}:{line}: {message}")

    def entry(self, line: int, entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        if kind == "message":
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

    def user(self, line: int, message: dict[str, Any]) -> None:
        text = strip_envelope("\n".join(_texts(message.get("content"))))
        self.turn += 1
        self.step = 0
        if self.first_user is None:
            self.first_user = text
        self.add(line, 0, UserTurn(turn=self.turn, text=text))

    def assistant(self, line: int, entry: dict[str, Any], message: dict[str, Any]) -> None:
        content = message.get("content")
        blocks = content if isinstance(content, list) else []
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
            calls.append(call)
            self.calls[call_id] = (call, self.turn, self.step, self.n_calls)
            self.n_calls += 1
        usage = message.get("usage") if isinstance(message.get("usage"), dict) else {}
        assert isinstance(usage, dict)
        prompt = sum(_int(usage.get(k)) or 0 for k in ("input", "cacheRead", "cacheWrite"))
        completion = _int(usage.get("output")) or 0
        started_ms = _epoch_ms(message.get("timestamp"))
        appended_ms = _epoch_ms(entry.get("timestamp"))
        latency = (
            appended_ms - started_ms
            if started_ms is not None and appended_ms is not None and appended_ms >= started_ms
            else 0.0
        )
        model = str(message.get("model") or "")
        if model and model not in self.models:
            self.models.append(model)
        self.add(
            line,
            0,
            ModelCall(
                role="agent",
                model=model,
                backend="openclaw",
                parameters={"api": message.get("api"), "provider": message.get("provider")},
                response={"content": blocks, "stopReason": message.get("stopReason")},
                finish_reason=message.get("stopReason"),
                usage=Usage(
                    prompt_tokens=prompt,
                    completion_tokens=completion,
                    total_tokens=_int(usage.get("totalTokens")) or prompt + completion,
                ),
                latency_ms=latency,
            ),
        )
        thinking = [t for t in _texts(blocks, "thinking") if t]
        self.add(
            line,
            1,
            AgentMessage(
                turn=self.turn,
                step=self.step,
                text="\n\n".join(t for t in _texts(content) if t),
                reasoning="\n\n".join(thinking) if thinking else None,
                tool_calls=calls,
            ),
        )
        self.step += 1

    def tool_result(self, line: int, message: dict[str, Any]) -> None:
        call_id = message.get("toolCallId")
        if not isinstance(call_id, str):
            raise self.fail(line, "toolResult without a string 'toolCallId'")
        tool = str(message.get("toolName") or "")
        raw_details = message.get("details")
        details: dict[str, Any] = dict(raw_details) if isinstance(raw_details, dict) else {}
        is_error = bool(message.get("isError", False))
        details["isError"] = is_error
        known = self.calls.get(call_id)
        if known is not None:
            call, turn, step, index = known
            self.add(
                line,
                0,
                ToolCallStarted(
                    call_id=call_id,
                    tool=call.name,
                    arguments=call.arguments,
                    turn=turn,
                    step=step,
                    index=index,
                ),
            )
        error = details.get("error")
        duration = details.get("durationMs")
        self.add(
            line,
            1,
            ToolCallFinished(
                call_id=call_id,
                tool=tool or (known[0].name if known else ""),
                result_text="\n".join(_texts(message.get("content"))),
                is_error=_failed(is_error, details),
                exit_code=_int(details.get("exitCode")),
                timed_out=str(details.get("status", "")).lower() in ("timeout", "timed_out"),
                duration_ms=float(duration) if isinstance(duration, int | float) else 0.0,
                error=error if isinstance(error, str) else None,
                details=details,
            ),
        )


def parse_openclaw(path: str | Path) -> ParsedSession:
    """Parse one OpenClaw session file into the events of its session stream.

    Raises:
        InvalidInput: unreadable file, or a line that does not parse (file and line named).
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{p}: cannot read: {e.strerror or e}") from e
    digest = hashlib.sha256(data).hexdigest()
    mapper = _Mapper(p, digest)
    header: dict[str, Any] | None = None
    last_line = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        last_line = number
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise mapper.fail(number, f"not a JSON object ({e})") from e
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise mapper.fail(number, "an entry must be a JSON object with a string 'type'")
        if header is None:
            if entry["type"] != "session":
                raise mapper.fail(number, "the first entry must be the session header")
            header = entry
            continue
        if entry["type"] == "session":
            raise mapper.fail(number, "a second session header")
        mapper.entry(number, entry)
    if header is None:
        raise InvalidInput(f"{p}: empty file (no session header)")
    try:
        session_id = uuid.UUID(str(header.get("id"))).hex
    except ValueError as e:
        raise mapper.fail(1, f"session id {header.get('id')!r} is not a UUID") from e
    intent = mapper.first_user or ""
    models = [ModelSpec(role="agent", backend="openclaw", model=m) for m in mapper.models] or [
        ModelSpec(role="agent", backend="openclaw", model=str(c.get("modelId")))
        for c in mapper.model_changes[:1]
    ]
    started = SessionStarted(
        session_id=session_id,
        intent_id=f"openclaw_{session_id[:16]}",
        intent=intent,
        intent_record={"source": "openclaw", "natural_language_intent": intent},
        models=models,
        tool_schemas=reference_tool_schemas(),
        sandbox_backend="openclaw",
        provenance={
            "imported": True,
            "importer": IMPORTER,
            "source_file": p.name,
            "source_digest": digest,
            "format_version": header.get("version"),
            "session_uuid": str(header.get("id")),
            "started_at": header.get("timestamp"),
            "cwd": header.get("cwd"),
            "model_changes": mapper.model_changes,
            "thinking_levels": mapper.thinking_levels,
            "custom_entries": dict(mapper.custom),
            "ignored_entries": dict(mapper.ignored),
            "tool_schemas_source": "reference OpenClaw tool set (not recorded in the file)",
        },
    )
    ended = SessionEnded(
        status="completed",
        reason="imported from OpenClaw; the reference archived only finished sessions",
        user_turns=mapper.turn,
        tool_calls=mapper.n_calls,
    )
    events = [
        NewEvent(started, event_id=_event_id(digest, 1, 0)),
        *mapper.events,
        NewEvent(ended, event_id=_event_id(digest, last_line + 1, 0)),
    ]
    return ParsedSession(
        session_id=session_id,
        stream_id=f"session-{session_id}",
        source=str(p),
        digest=digest,
        events=events,
        user_turns=mapper.turn,
        tool_calls=mapper.n_calls,
    )


def openclaw_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files named, and every *.jsonl under directories named, in a stable order.

    Raises:
        InvalidInput: a path that does not exist.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*.jsonl") if f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInput(f"{p}: no such file or directory")
    return out


def import_openclaw(store: EventStore, paths: Iterable[str | Path]) -> list[FileResult]:
    """Import each file as one session; a bad file is reported and the others go on."""
    results: list[FileResult] = []
    for path in openclaw_files(paths):
        try:
            parsed = parse_openclaw(path)
        except InvalidInput as e:
            results.append(FileResult(path=str(path), status="failed", error=str(e)))
            continue
        head = store.read_stream(parsed.stream_id, 1, to_version=1)
        if head:
            first = head[0].data
            source = (
                first.provenance.get("source_digest") if isinstance(first, SessionStarted) else None
            )
            if source == parsed.digest:
                results.append(
                    FileResult(
                        path=str(path), stream_id=parsed.stream_id, status="already imported"
                    )
                )
            else:
                results.append(
                    FileResult(
                        path=str(path),
                        stream_id=parsed.stream_id,
                        status="failed",
                        error=(
                            f"{path}: session {parsed.stream_id} is already in the store from "
                            f"another file (digest {str(source)[:12]}, this file "
                            f"{parsed.digest[:12]}); the log is append-only"
                        ),
                    )
                )
            continue
        result = store.append(parsed.stream_id, parsed.events, 0)
        results.append(
            FileResult(
                path=str(path),
                stream_id=parsed.stream_id,
                status="imported" if result.appended else "already imported",
                events=result.appended,
            )
        )
    return results
