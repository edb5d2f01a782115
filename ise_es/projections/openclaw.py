"""`ise-es import openclaw`: OpenClaw session JSONL files into session streams.

One file is one session stream (`session-<header uuid, hex>`), appended in ONE call, so a file
is imported whole or not at all: every line is parsed and mapped before anything is written,
and a line that does not parse is reported with file and line (`skip_invalid` leaves such
lines out instead, e.g. the cut-off last line of a file copied while the agent still wrote,
and reports them). Event ids are derived from the file's sha256 and the line number, so
importing the same file again is a no-op; a different file claiming an already imported
session is refused (the log is append-only).

Mapping (the reference converter's known losses are not repeated):
- user message -> UserTurn; the client envelope (`[Thu 2026-03-26 21:29 GMT+8] `) is stripped.
- assistant message -> ModelCall(role=agent: usage, latency, and the content blocks in their
  original order under `response`) + AgentMessage (text, reasoning from thinking blocks, tool
  calls). Messages holding only thinking are kept.
- toolResult -> ToolCallStarted + ToolCallFinished; the outcome follows FAILURE_RULE
  (`isError` AND `details` AND an `{"error": ...}` result text): `is_error` is that derived
  outcome and `details` is the original plus the raw `isError`.
- session header, model/thinking-level changes and custom entries -> SessionStarted
  (provenance: file name, digest, cwd, ...). The file records no tool schemas, so `tools`
  (the agent's real schemas, e.g. its runtime catalogue) are attached when given; otherwise
  each tool the agent used gets a schema inferred from the arguments seen (types, and the
  keys present in every call as required), and `provenance.tool_schemas_source` says which.
  Tools the agent never called are then unknown, and never invented.
- `intents` (reference-schema records by id) attach the intent, persona, domains, tasks and
  complexity to a session whose file name carries the intent id, as the reference names
  them: `intent_<id>__<worker>__<uuid>.jsonl`.
- The header's timestamp and the last entry's become `SessionStarted.started_at` and
  `SessionEnded.ended_at`, so the session shows when it really ran, not when it was imported.
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
from ise_es.projections.session import function_schemas, outcome_failed
from ise_es.store.base import EventStore, NewEvent

__all__ = [
    "ENVELOPE",
    "FileResult",
    "ParsedSession",
    "append_session",
    "import_openclaw",
    "infer_tool_schemas",
    "input_files",
    "intent_id_from_name",
    "load_tool_schemas",
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
    skipped: list[str] = []
    """`FILE:LINE: problem` of each line left out under `skip_invalid`."""
    intent_attached: bool = False


class FileResult(msgspec.Struct, kw_only=True):
    path: str
    stream_id: str = ""
    status: str
    """imported | already imported | failed"""
    events: int = 0
    error: str = ""
    skipped: list[str] = []
    intent_attached: bool = False


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
        self.arguments: dict[str, list[Any]] = {}
        """tool name -> the arguments of each call to it, in the order of first use"""
        self.last_time: float | None = None

    def add(self, line: int, part: int, event: Event) -> None:
        self.events.append(NewEvent(event, event_id=_event_id(self.digest, line, part)))

    def fail(self, line: int, message: str) -> InvalidInput:
        return InvalidInput(f"{self.path}:{line}: {message}")

    def entry(self, line: int, entry: dict[str, Any]) -> None:
        kind = entry.get("type")
        when = _epoch_ms(entry.get("timestamp"))
        if when is not None:
            self.last_time = when / 1000
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
            self.arguments.setdefault(name, []).append(args)
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
        result_text = "\n".join(_texts(message.get("content")))
        self.add(
            line,
            1,
            ToolCallFinished(
                call_id=call_id,
                tool=tool or (known[0].name if known else ""),
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


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def infer_tool_schemas(arguments: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """OpenAI function schemas for the tools used, from the arguments of their calls: each
    key seen becomes a property typed by the JSON types seen (integer and number merge to
    number), required when every call had it. Descriptions stay empty: nothing says them."""
    out: list[dict[str, Any]] = []
    for name, calls in arguments.items():
        objects = [a for a in calls if isinstance(a, dict)]
        types: dict[str, list[str]] = {}
        for args in objects:
            for key, value in args.items():
                seen = types.setdefault(key, [])
                kind = _json_type(value)
                if kind not in seen:
                    seen.append(kind)
        properties: dict[str, Any] = {}
        for key, kinds in types.items():
            if "integer" in kinds and "number" in kinds:
                kinds = [k for k in kinds if k != "integer"]
            properties[key] = {"type": kinds[0] if len(kinds) == 1 else kinds}
        required = [k for k in types if objects and all(k in a for a in objects)]
        parameters: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            parameters["required"] = required
        out.append(
            {
                "type": "function",
                "function": {"name": name, "description": "", "parameters": parameters},
            }
        )
    return out


def load_tool_schemas(path: str | Path) -> list[dict[str, Any]]:
    """The agent's real tool schemas from a JSON file: a list of function schemas (wrapped
    `{type, function}` or bare `{name, description, parameters}`), or an object holding them
    under `tools` (a middle-format file or a runtime catalogue).

    Raises:
        InvalidInput: unreadable, not JSON, or no list of named schemas.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_bytes())
    except OSError as e:
        raise InvalidInput(f"{p}: cannot read: {e.strerror or e}") from e
    except ValueError as e:
        raise InvalidInput(f"{p}: not JSON ({e})") from e
    if isinstance(data, dict):
        data = data.get("tools")
    if isinstance(data, str):  # sharegpt keeps `tools` as a JSON string
        try:
            data = json.loads(data)
        except ValueError:
            data = None
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{p}: expected a JSON list of tool schemas (or an object with 'tools')")
    started = SessionStarted(session_id="", intent_id="", intent="", tool_schemas=data)
    schemas = function_schemas(started)
    for i, schema in enumerate(schemas):
        if not isinstance(schema["function"], dict) or not isinstance(
            schema["function"].get("name"), str
        ):
            raise InvalidInput(f"{p}: tool schema {i} has no string 'name'")
    return schemas


def intent_id_from_name(name: str, known: Iterable[str] = ()) -> str | None:
    """The intent id in a reference session file name, `intent_<id>__<worker>__<uuid>.jsonl`
    (`intent_58f206b3` or `58f206b3`, whichever `known` holds); None without that shape."""
    stem = name.removesuffix(".jsonl")
    head, sep, _ = stem.partition("__")
    if not sep or not head.startswith("intent_"):
        return None
    ids = set(known)
    for candidate in (head, head.removeprefix("intent_")):
        if candidate in ids:
            return candidate
    return head


def _parse_lines(
    data: bytes, mapper: _Mapper, skip_invalid: bool, skipped: list[str]
) -> tuple[dict[str, Any] | None, int]:
    header: dict[str, Any] | None = None
    last_line = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        last_line = number
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            if skip_invalid:
                skipped.append(f"{mapper.path}:{number}: not a JSON object ({e})")
                continue
            raise mapper.fail(number, f"not a JSON object ({e}); --skip-invalid to go on") from e
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
    return header, last_line


def parse_openclaw(
    path: str | Path,
    *,
    tools: list[dict[str, Any]] | None = None,
    intents: dict[str, dict[str, Any]] | None = None,
    skip_invalid: bool = False,
) -> ParsedSession:
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
    skipped: list[str] = []
    header, last_line = _parse_lines(data, mapper, skip_invalid, skipped)
    if header is None:
        raise InvalidInput(f"{p}: empty file (no session header)")
    try:
        session_id = uuid.UUID(str(header.get("id"))).hex
    except ValueError as e:
        raise mapper.fail(1, f"session id {header.get('id')!r} is not a UUID") from e
    first_user = mapper.first_user or ""
    intent_id = intent_id_from_name(p.name, intents or {})
    record = (intents or {}).get(intent_id or "")
    models = [ModelSpec(role="agent", backend="openclaw", model=m) for m in mapper.models] or [
        ModelSpec(role="agent", backend="openclaw", model=str(c.get("modelId")))
        for c in mapper.model_changes[:1]
    ]
    if tools is not None:
        schemas, schema_source = tools, "given (import openclaw --tools)"
    else:
        schemas = infer_tool_schemas(mapper.arguments)
        schema_source = (
            f"inferred from the arguments of {mapper.n_calls} observed calls (no --tools "
            "file): only the tools the agent used, without descriptions"
        )
    metadata = record.get("metadata") if record else None
    persona = metadata.get("persona") if isinstance(metadata, dict) else None
    header_time = _epoch_ms(header.get("timestamp"))
    started = SessionStarted(
        session_id=session_id,
        intent_id=(record or {}).get("id") or intent_id or f"openclaw_{session_id[:16]}",
        intent=str(record["natural_language_intent"]) if record else first_user,
        intent_record={"source": "openclaw", **record}
        if record
        else {"source": "openclaw", "natural_language_intent": first_user},
        persona=persona if isinstance(persona, dict) else None,
        models=models,
        tool_schemas=schemas,
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
            "tool_schemas_source": schema_source,
            "intent_source": "import openclaw --intents" if record else "first user message",
            "skipped_lines": skipped,
        },
        started_at=header_time / 1000 if header_time is not None else None,
    )
    ended = SessionEnded(
        status="completed",
        reason="imported from OpenClaw; the reference archived only finished sessions",
        user_turns=mapper.turn,
        tool_calls=mapper.n_calls,
        ended_at=mapper.last_time,
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
        skipped=skipped,
        intent_attached=record is not None,
    )


def input_files(
    paths: Iterable[str | Path], suffixes: tuple[str, ...], *, exclude: tuple[str, ...] = ()
) -> list[Path]:
    """Files named, and every file with one of `suffixes` under directories named (but the
    names in `exclude`), in a stable order: what every importer reads.

    Raises:
        InvalidInput: a path that does not exist.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and f.suffix in suffixes and f.name not in exclude
                )
            )
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInput(f"{p}: no such file or directory")
    return out


def openclaw_files(paths: Iterable[str | Path]) -> list[Path]:
    """OpenClaw session files: those named, and every *.jsonl under directories named."""
    return input_files(paths, (".jsonl",))


def append_session(store: EventStore, path: str | Path, parsed: ParsedSession) -> FileResult:
    """Append one parsed session unless the store holds it already (same source digest: a
    no-op) or holds another source's session under that id (refused: append-only)."""
    head = store.read_stream(parsed.stream_id, 1, to_version=1)
    if head:
        first = head[0].data
        source = (
            first.provenance.get("source_digest") if isinstance(first, SessionStarted) else None
        )
        if source == parsed.digest:
            return FileResult(path=str(path), stream_id=parsed.stream_id, status="already imported")
        return FileResult(
            path=str(path),
            stream_id=parsed.stream_id,
            status="failed",
            error=(
                f"{path}: session {parsed.stream_id} is already in the store from another "
                f"file (digest {str(source)[:12]}, this file {parsed.digest[:12]}); the log "
                "is append-only"
            ),
        )
    result = store.append(parsed.stream_id, parsed.events, 0)
    return FileResult(
        path=str(path),
        stream_id=parsed.stream_id,
        status="imported" if result.appended else "already imported",
        events=result.appended,
        skipped=parsed.skipped,
        intent_attached=parsed.intent_attached,
    )


def import_openclaw(
    store: EventStore,
    paths: Iterable[str | Path],
    *,
    tools: list[dict[str, Any]] | None = None,
    intents: dict[str, dict[str, Any]] | None = None,
    skip_invalid: bool = False,
) -> list[FileResult]:
    """Import each file as one session; a bad file is reported and the others go on."""
    results: list[FileResult] = []
    for path in openclaw_files(paths):
        try:
            parsed = parse_openclaw(path, tools=tools, intents=intents, skip_invalid=skip_invalid)
        except InvalidInput as e:
            results.append(FileResult(path=str(path), status="failed", error=str(e)))
            continue
        results.append(append_session(store, path, parsed))
    return results
