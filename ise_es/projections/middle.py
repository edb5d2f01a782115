"""`ise-es import middle`: ISE middle-format trajectories (either shape) into session streams.

A file holds one trajectory (the reference writes one JSON file per trajectory) or one per
line (`ise-es project sft-jsonl --format middle` writes JSONL). Each trajectory becomes one
session stream appended in one call; event ids derive from the digest of the trajectory's
canonical JSON, so importing it again is a no-op and another trajectory claiming the same
session id is refused, as for `import openclaw`.

Both shapes are read: legacy (`intent`, arguments as JSON strings) and current
(`source_intents`, `session_finalized_by_intent_id`, arguments as objects). Mapping:
- a leading `system` message -> SessionStarted.system_prompt; `tools` -> tool_schemas;
  intent, persona, domains, tasks and complexity -> intent, persona and intent_record.
- `user` -> UserTurn; `assistant` -> AgentMessage (reasoning from `reasoning_content`);
  `tool` -> ToolCallStarted + ToolCallFinished with `is_error = not success`. What ise-es
  keeps under `metadata` (tool_results: exit codes, durations, details; model_calls: usage,
  latency) is restored when present, so our own exports round-trip.
- `status` -> SessionEnded.status when it is one of ours, else `completed` (the reference
  kept finished sessions), the original status in the reason.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ise_es.errors import InvalidInput
from ise_es.events import (
    Event,
    ModelCall,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallFinished,
    Usage,
)
from ise_es.projections.importing import (
    ENDED_STATUSES,
    FileResult,
    ParsedSession,
    StreamWalk,
    derived_id,
    import_files,
    input_files,
    read_source,
)
from ise_es.store.base import EventStore, NewEvent

__all__ = ["import_middle", "middle_files", "parse_middle", "parse_trajectory"]

IMPORTER = "ise-es import middle"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


def _session_id(value: Any, digest: str) -> str:
    text = str(value or "")
    try:
        return uuid.UUID(text).hex
    except ValueError:
        return text if _SAFE_ID.match(text) else digest[:32]


def _arguments(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _intent(obj: dict[str, Any]) -> tuple[str, str, str]:
    """(intent id, intent text, task type) of either shape."""
    if "intent" in obj:
        return str(obj.get("intent_id") or ""), str(obj.get("intent") or ""), ""
    sources = [s for s in obj.get("source_intents") or [] if isinstance(s, dict)]
    finalized = obj.get("session_finalized_by_intent_id")
    chosen = next((s for s in sources if s.get("intent_id") == finalized), None)
    chosen = chosen or (sources[0] if sources else {})
    ids = obj.get("source_intent_ids") or []
    intent_id = str(finalized or chosen.get("intent_id") or (ids[0] if ids else ""))
    return (
        intent_id,
        str(chosen.get("natural_language_intent") or ""),
        str(chosen.get("task_type") or ""),
    )


def _model_call(call_usage: dict[str, Any]) -> ModelCall:
    """The ModelCall our own export listed under `metadata.model_calls`."""
    return ModelCall(
        role="agent",
        model=str(call_usage.get("model") or ""),
        backend="middle",
        finish_reason=call_usage.get("finish_reason"),
        usage=Usage(
            prompt_tokens=int(call_usage.get("prompt_tokens") or 0),
            completion_tokens=int(call_usage.get("completion_tokens") or 0),
            total_tokens=int(call_usage.get("total_tokens") or 0),
        ),
        latency_ms=float(call_usage.get("latency_ms") or 0.0),
    )


def _tool_finished(
    m: dict[str, Any], call_id: str, name: str, text: str, extra: dict[str, Any]
) -> ToolCallFinished:
    """A tool message's result, with what our own export listed under
    `metadata.tool_results` (`extra`) restored."""
    details = extra.get("details") if isinstance(extra.get("details"), dict) else {}
    exit_code = extra.get("exit_code")
    error = extra.get("error")
    return ToolCallFinished(
        call_id=call_id,
        tool=name,
        result_text=text,
        is_error=bool(extra.get("is_error", m.get("success") is False)),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        timed_out=bool(extra.get("timed_out", False)),
        duration_ms=float(extra.get("duration_ms") or 0.0),
        error=error if isinstance(error, str) else None,
        # the file's `success` is the only error flag it has: `--success reference`
        # reads it back as the raw flag (unless restored details carry their own)
        details={"isError": m.get("success") is False, **(details or {})},
    )


class _Builder:
    """The events of one trajectory's messages, in message order."""

    def __init__(
        self,
        digest: str,
        where: str,
        results: dict[str, dict[str, Any]],
        usage: dict[int, dict[str, Any]],
    ) -> None:
        self.digest = digest
        self.where = where
        self.results = results
        self.usage = usage
        self.events: list[NewEvent] = []
        self.walk = StreamWalk()

    def add(self, event: Event) -> None:
        n = len(self.events)
        self.events.append(NewEvent(event, event_id=derived_id("middle", self.digest, n)))

    def message(self, index: int, m: dict[str, Any]) -> None:
        role = m.get("role")
        content = m.get("content")
        text = content if isinstance(content, str) else ""
        if role == "user":
            self.add(self.walk.user_turn(text))
        elif role == "assistant":
            self.assistant(index, m, text)
        elif role == "tool":
            self.tool(m, text)
        elif role != "system":
            raise InvalidInput(f"{self.where}: message {index} has unknown role {role!r}")

    def tool_calls(self, index: int, m: dict[str, Any]) -> list[ToolCall]:
        calls = []
        for raw in m.get("tool_calls") or []:
            function = raw.get("function") if isinstance(raw, dict) else None
            if not isinstance(function, dict) or not isinstance(raw.get("id"), str):
                raise InvalidInput(f"{self.where}: message {index}: a tool call needs id/function")
            call = ToolCall(
                id=raw["id"],
                name=str(function.get("name") or ""),
                arguments=_arguments(function.get("arguments", {})),
            )
            self.walk.remember(call, len(self.walk.calls))
            calls.append(call)
        return calls

    def assistant(self, index: int, m: dict[str, Any], text: str) -> None:
        calls = self.tool_calls(index, m)
        call_usage = self.usage.get(index)
        if call_usage is not None:
            self.add(_model_call(call_usage))
        reasoning = m.get("reasoning_content")
        reasoning = reasoning if isinstance(reasoning, str) and reasoning else None
        self.add(self.walk.agent_message(text, reasoning, calls))

    def tool(self, m: dict[str, Any], text: str) -> None:
        call_id = str(m.get("tool_call_id") or "")
        name = str(m.get("name") or self.walk.call_name(call_id))
        started = self.walk.started(call_id)
        if started is not None:
            self.add(started)
        self.add(_tool_finished(m, call_id, name, text, self.results.get(call_id, {})))


def _restored(meta: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, Any]]]:
    """What our own export keeps under `metadata`: tool results by call id, model calls by
    message index."""
    results = {
        str(r.get("tool_call_id")): r for r in meta.get("tool_results") or [] if isinstance(r, dict)
    }
    usage = {
        int(c["message_index"]): c
        for c in meta.get("model_calls") or []
        if isinstance(c, dict) and isinstance(c.get("message_index"), int)
    }
    return results, usage


def _intent_record(obj: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    intent_id, intent, task_type = _intent(obj)
    record: dict[str, Any] = {
        "source": "middle",
        "id": intent_id,
        "natural_language_intent": intent,
        "domains": meta.get("domains") or [],
        "tasks": meta.get("tasks") or ([task_type] if task_type else []),
        "complexity": meta.get("complexity"),
        "skills_used": obj.get("skills") or [],
    }
    persona = meta.get("persona")
    if isinstance(persona, dict):
        record["metadata"] = {"persona": persona}
    return record


def _session_started(
    obj: dict[str, Any],
    meta: dict[str, Any],
    messages: list[dict[str, Any]],
    session_id: str,
    digest: str,
    where: str,
) -> SessionStarted:
    record = _intent_record(obj, meta)
    intent_id, intent = record["id"], record["natural_language_intent"]
    persona = meta.get("persona")
    system = next(
        (str(m.get("content") or "") for m in messages[:1] if m.get("role") == "system"), ""
    )
    return SessionStarted(
        session_id=session_id,
        intent_id=intent_id or f"middle_{session_id[:16]}",
        intent=intent,
        intent_record=record,
        persona=persona if isinstance(persona, dict) else None,
        system_prompt=system,
        tool_schemas=[t for t in obj.get("tools") or [] if isinstance(t, dict)],
        sandbox_backend="middle",
        provenance={
            "imported": True,
            "importer": IMPORTER,
            "source_file": where,
            "source_digest": digest,
            "middle_shape": "legacy" if "intent" in obj else "current",
            "original_session_id": obj.get("session_id"),
            # a legacy export names the session as the file did
            "session_uuid": str(obj.get("session_id") or "") or None,
            "tool_schemas_source": "the trajectory's `tools`",
        },
    )


def parse_trajectory(obj: Any, where: str) -> ParsedSession:
    """One middle-format trajectory (either shape) as the events of its session stream.

    Raises:
        InvalidInput: not a trajectory (no messages list, a message of unknown role...).
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list):
        raise InvalidInput(f"{where}: not a middle-format trajectory (no 'messages' list)")
    digest = hashlib.sha256(
        json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()
    ).hexdigest()
    session_id = _session_id(obj.get("session_id"), digest)
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    builder = _Builder(digest, where, *_restored(meta))
    messages = [m for m in obj["messages"] if isinstance(m, dict)]
    for index, m in enumerate(messages):
        builder.message(index, m)
    started = _session_started(obj, meta, messages, session_id, digest, where)
    walk = builder.walk
    status = str(obj.get("status") or "")
    builder.add(
        SessionEnded(
            status=status if status in ENDED_STATUSES else "completed",  # type: ignore[arg-type]
            reason=f"imported from a middle-format file (status {status!r})",
            user_turns=walk.turn,
            tool_calls=len(walk.calls),
        )
    )
    return ParsedSession.of(
        session_id,
        where,
        digest,
        [NewEvent(started, event_id=derived_id("middle", digest, "start")), *builder.events],
        user_turns=walk.turn,
        tool_calls=len(walk.calls),
        intent_attached=bool(started.intent),
    )


def parse_middle(path: str | Path, *, skip_invalid: bool = False) -> list[ParsedSession]:
    """Every trajectory of one file: a single JSON object, or one object per line.

    Raises:
        InvalidInput: unreadable, or (without `skip_invalid`) a broken line or trajectory.
    """
    p = Path(path)
    data = read_source(p)
    try:
        whole = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        whole = None
    if isinstance(whole, dict):
        return [parse_trajectory(whole, str(p))]
    out: list[ParsedSession] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        where = f"{p}:{number}"
        try:
            try:
                obj = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as e:
                raise InvalidInput(f"{where}: not a JSON object ({e})") from e
            out.append(parse_trajectory(obj, where))
        except InvalidInput as e:
            if not skip_invalid:
                raise InvalidInput(f"{e} (nothing was imported; --skip-invalid to go on)") from e
            out.append(ParsedSession.left_out(where, str(e)))
    return out


def middle_files(paths: Iterable[str | Path]) -> list[Path]:
    """Middle files: those named, and every *.json / *.jsonl under directories named."""
    return input_files(paths, (".json", ".jsonl"))


def import_middle(
    store: EventStore, paths: Iterable[str | Path], *, skip_invalid: bool = False
) -> list[FileResult]:
    """Import every trajectory of every file; a bad file is reported and the others go on."""
    return import_files(
        store, middle_files(paths), lambda path: parse_middle(path, skip_invalid=skip_invalid)
    )
