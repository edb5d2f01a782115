"""What the viewer's JSON API returns, assembled from the store's public verbs.

Pure reads: `read_stream`, `streams`, `get_blob`, the session fold and the audit rules. Events
go out as the store holds them (`{v, p, at, type, data}`; bytes as base64, msgspec's rule), so
a script against the API sees the log itself; `lean=True` drops what a page does not draw (a
model call's full request parameters and response, which repeat the agent message).
"""

from __future__ import annotations

import difflib
from typing import Any

import msgspec

from ise_es.errors import BlobNotFound, InvalidInput
from ise_es.events import (
    FsDiff,
    ModelCall,
    ReplayEnded,
    ReplayStarted,
    SessionEnded,
    SessionStarted,
    StepReplayed,
    ToolCallFinished,
    ToolCallStarted,
)
from ise_es.projections.audit import audit_session
from ise_es.projections.session import fold_session
from ise_es.store.base import EventStore, StoredEvent

__all__ = [
    "NotFound",
    "event_json",
    "events_after",
    "file_diff",
    "replay_json",
    "replay_stream",
    "session_json",
    "session_stream",
]

DIFF_CAP = 2_000_000
"""Bytes of file content the viewer diffs; a larger file shows its size instead."""


class NotFound(InvalidInput):
    """No such session, replay, blob or file change (the API answers 404)."""


def session_stream(session_id: str) -> str:
    return session_id if session_id.startswith("session-") else f"session-{session_id}"


def replay_stream(replay_id: str) -> str:
    return replay_id if replay_id.startswith("replay-") else f"replay-{replay_id}"


def _lean_model_call(call: ModelCall) -> dict[str, Any]:
    return {
        "type": "model_call",
        "role": call.role,
        "model": call.model,
        "backend": call.backend,
        "finish_reason": call.finish_reason,
        "usage": msgspec.to_builtins(call.usage),
        "latency_ms": call.latency_ms,
        "retries": len(call.retries),
        "error": call.error,
    }


def event_json(stored: StoredEvent, *, lean: bool = False) -> dict[str, Any]:
    data = stored.data
    payload = (
        _lean_model_call(data)
        if lean and isinstance(data, ModelCall)
        else msgspec.to_builtins(data)
    )
    return {
        "v": stored.version,
        "p": stored.position,
        "at": stored.recorded_at,
        "type": stored.type,
        "data": payload,
    }


def _read_session(store: EventStore, session_id: str) -> list[StoredEvent]:
    events = store.read_stream(session_stream(session_id))
    if not events:
        raise NotFound(f"no session {session_id!r}")
    return events


def session_json(
    store: EventStore, session_id: str, lexicon: list[str], *, lean: bool = False
) -> dict[str, Any]:
    """The session: intent, persona, settings, audit findings and every event in order."""
    events = _read_session(store, session_id)
    view = fold_session(events)
    started = view.started or SessionStarted(session_id=session_id, intent_id="", intent="")
    audit = audit_session(view, lexicon)
    return {
        "session_id": view.session_id,
        "stream_id": view.stream_id,
        "intent_id": started.intent_id,
        "intent": started.intent,
        "intent_record": started.intent_record,
        "persona": started.persona,
        "settings": {
            "scenario": started.scenario,
            "models": [msgspec.to_builtins(m) for m in started.models],
            "sandbox_backend": started.sandbox_backend,
            "template": started.template,
            "template_digest": started.template_digest,
            "seeds": started.seeds,
            "environment": started.environment,
            "attempt": started.attempt,
            "provenance": started.provenance,
            "system_prompt": started.system_prompt,
            "tools": [(s.get("function") or s).get("name", "?") for s in started.tool_schemas],
        },
        "status": view.status or "running",
        "ended": msgspec.to_builtins(view.ended) if view.ended else None,
        "version": view.last_version,
        "audit": [msgspec.to_builtins(f) for f in audit.findings],
        "events": [event_json(e, lean=lean) for e in events],
    }


def events_after(
    store: EventStore, session_id: str, after: int, *, lean: bool = False
) -> dict[str, Any]:
    """The live tail: events with a version above `after` (none yet: an empty list)."""
    stream = session_stream(session_id)
    events = store.read_stream(stream, after + 1)
    if not events and not store.read_stream(stream, 1, to_version=1):
        raise NotFound(f"no session {session_id!r}")
    ended = any(isinstance(e.data, SessionEnded) for e in events)
    return {
        "after": after,
        "version": events[-1].version if events else after,
        "ended": ended,
        "events": [event_json(e, lean=lean) for e in events],
    }


def _text_of(store: EventStore, digest: str | None) -> str | None:
    """A blob as text, or None when it is binary or too big to diff."""
    if digest is None:
        return ""
    data = store.get_blob(digest)
    if len(data) > DIFF_CAP or b"\0" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def file_diff(store: EventStore, session_id: str, call_id: str, path: str) -> dict[str, Any]:
    """The unified diff of one file change: against the same path's previous content in this
    session, or against nothing when the file was added. A file first changed in this session
    came from the workspace template, whose content is not in the log: `base` says so."""
    previous: str | None = None
    found = None
    for stored in _read_session(store, session_id):
        data = stored.data
        if not isinstance(data, FsDiff):
            continue
        for change in data.changes:
            if change.path != path:
                continue
            if data.call_id == call_id:
                found = (stored.version, change)
                break
            previous = change.digest if change.stored and change.kind != "deleted" else None
        if found:
            break
    if found is None:
        raise NotFound(f"no change of {path!r} by call {call_id!r}")
    version, change = found
    base = "previous" if previous else ("empty" if change.kind == "added" else "template")
    result: dict[str, Any] = {
        "path": path,
        "call_id": call_id,
        "version": version,
        "kind": change.kind,
        "size": change.size,
        "digest": change.digest,
        "base": base,
        "stored": change.stored,
    }
    try:
        old = _text_of(store, previous) if base == "previous" else ""
        new = _text_of(store, change.digest) if change.stored and change.kind != "deleted" else ""
    except BlobNotFound as e:
        raise NotFound(str(e)) from e
    if change.kind == "deleted":
        new = ""
    if old is None or new is None:
        result["binary"] = True
        result["diff"] = ""
        return result
    result["binary"] = False
    result["diff"] = "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"a/{path}" if base != "empty" else "/dev/null",
            tofile=f"b/{path}" if change.kind != "deleted" else "/dev/null",
        )
    )
    return result


def _source_calls(store: EventStore, stream_id: str) -> dict[str, dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}
    for stored in store.read_stream(stream_id):
        data = stored.data
        if isinstance(data, ToolCallStarted):
            calls[data.call_id] = {
                "v": stored.version,
                "tool": data.tool,
                "arguments": data.arguments,
                "turn": data.turn,
                "index": data.index,
            }
        elif isinstance(data, ToolCallFinished):
            entry = calls.setdefault(data.call_id, {"tool": data.tool, "arguments": ""})
            entry.update(
                finished_v=stored.version,
                exit_code=data.exit_code,
                is_error=data.is_error,
                timed_out=data.timed_out,
                duration_ms=data.duration_ms,
                result_text=data.result_text[:20_000],
                result_size=len(data.result_text),
            )
        elif isinstance(data, FsDiff) and data.call_id in calls:
            calls[data.call_id].setdefault("changes", []).extend(
                msgspec.to_builtins(c) for c in data.changes
            )
    return calls


def replay_json(store: EventStore, replay_id: str) -> dict[str, Any]:
    """A replay: its start, each step beside the recorded call it re-ran, and its end."""
    events = store.read_stream(replay_stream(replay_id))
    if not events or not isinstance(events[0].data, ReplayStarted):
        raise NotFound(f"no replay {replay_id!r}")
    started = events[0].data
    calls = _source_calls(store, started.source_stream)
    steps: list[dict[str, Any]] = []
    ended: ReplayEnded | None = None
    for stored in events[1:]:
        data = stored.data
        if isinstance(data, StepReplayed):
            steps.append(
                {
                    "v": stored.version,
                    "step": msgspec.to_builtins(data),
                    "source": calls.get(data.call_id),
                }
            )
        elif isinstance(data, ReplayEnded):
            ended = data
    return {
        "replay_id": events[0].stream_id.removeprefix("replay-"),
        "stream_id": events[0].stream_id,
        "source_session": started.source_stream.removeprefix("session-"),
        "started": msgspec.to_builtins(started),
        "ended": msgspec.to_builtins(ended) if ended else None,
        "status": ended.status if ended else "running",
        "steps": steps,
    }
