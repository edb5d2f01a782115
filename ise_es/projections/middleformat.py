"""The ISE middle format written from a session (`formats.py` describes it; `middle.py` reads
it back): one document per trajectory, in the current or the legacy shape.

The messages are walked once (`_Walk`), collecting beside them what the format keeps under
`metadata` (tool results, model calls, malformed calls); the document is then the shape's keys
around them (`_legacy_document`, `_current_document`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import msgspec

from ise_es.events import ModelCall, SessionStarted, ToolCallFinished
from ise_es.projections.conversation import Msg, malformed_arguments
from ise_es.projections.formatoptions import LEGACY_KEYS, RenderOptions, think
from ise_es.projections.secrets import redact as redact_secrets
from ise_es.projections.session import SessionView, function_schemas, reference_failed

__all__ = ["arguments_value", "middle_document"]


def arguments_value(arguments: str) -> Any:
    """Newer middle files hold arguments as an object; malformed ones stay the raw string."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return arguments
    return parsed if isinstance(parsed, dict) else arguments


def _scrub(value: Any, clean: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, dict):
        return {k: _scrub(v, clean) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, clean) for v in value]
    return value


def _tool_message(m: Msg, options: RenderOptions, legacy: bool) -> dict[str, Any]:
    failed = (
        reference_failed(m.finished)
        if options.success == "reference" and m.finished is not None
        else not m.success
    )
    return {
        "role": "tool",
        "name": m.name,
        "tool_call_id": m.call_id,
        "content": m.content.strip() if legacy else m.content,
        "success": not failed,
    }


def _model_call_entry(index: int, call: ModelCall) -> dict[str, Any]:
    return {
        "message_index": index,
        "model": call.model,
        "prompt_tokens": call.usage.prompt_tokens,
        "completion_tokens": call.usage.completion_tokens,
        "total_tokens": call.usage.total_tokens,
        "latency_ms": call.latency_ms,
        "finish_reason": call.finish_reason,
    }


class _Walk:
    """The trajectory's messages and, beside them, what `metadata` lists about them."""

    def __init__(self, view: SessionView, options: RenderOptions, clean: Callable[[str], str]):
        self.view = view
        self.options = options
        self.clean = clean
        self.legacy = options.middle_shape == "legacy"
        self.messages: list[dict[str, Any]] = []
        self.tool_results: list[dict[str, Any]] = []
        self.model_calls: list[dict[str, Any]] = []
        self.malformed: list[dict[str, Any]] = []
        self.any_reasoning = False
        self.final_output = ""

    def run(self, system: str, messages: list[Msg]) -> _Walk:
        if system:
            self.messages.append({"role": "system", "content": system})
        for m in messages:
            if m.role == "user":
                self.messages.append({"role": "user", "content": m.content})
            elif m.role == "assistant":
                self.assistant(m)
            else:
                self.messages.append(_tool_message(m, self.options, self.legacy))
                if m.finished is not None:
                    self.tool_results.append(self.tool_result(m.finished))
        return self

    def assistant(self, m: Msg) -> None:
        index = len(self.messages)
        message: dict[str, Any] = {"role": "assistant", "content": m.content}
        if m.reasoning and self.options.reasoning != "drop":
            self.any_reasoning = True
            reasoning = m.reasoning.strip() if self.legacy else m.reasoning
            if self.options.reasoning == "field":
                message["reasoning_content"] = reasoning
            else:
                message["content"] = think(reasoning, m.content)
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": c.arguments if self.legacy else arguments_value(c.arguments),
                    },
                }
                for c in m.tool_calls
            ]
            self.malformed.extend(
                {"message_index": index, "tool_call_id": c.id}
                for c in m.tool_calls
                if malformed_arguments(c.arguments)
            )
        self.final_output = m.content
        if m.model_call is not None:
            self.model_calls.append(_model_call_entry(index, m.model_call))
        self.messages.append(message)

    def tool_result(self, f: ToolCallFinished) -> dict[str, Any]:
        clean = self.clean
        return {
            "tool_call_id": f.call_id,
            "name": f.tool,
            "exit_code": f.exit_code,
            "is_error": f.is_error,
            "timed_out": f.timed_out,
            "duration_ms": f.duration_ms,
            "error": clean(f.error) if f.error else None,
            "details": _scrub(f.details, clean),
            "files_changed": sum(len(d.changes) for d in self.view.diffs.get(f.call_id, [])),
        }


def _session_metadata(view: SessionView, clean: Callable[[str], str]) -> dict[str, Any]:
    started, ended = view.started, view.ended
    return {
        "stream_id": view.stream_id,
        "status": view.status,
        "reason": ended.reason if ended else "",
        "user_turns": len(view.user_turns()),
        "sandbox_backend": started.sandbox_backend if started else "",
        "template": started.template if started else "",
        "template_digest": started.template_digest if started else "",
        "models": [msgspec.to_builtins(s) for s in started.models] if started else [],
        "provenance": _scrub(started.provenance, clean) if started else {},
    }


def _metadata(
    view: SessionView,
    walk: _Walk,
    record: dict[str, Any],
    sources: list[dict[str, Any]],
) -> dict[str, Any]:
    started = view.started
    metadata: dict[str, Any] = {
        "persona": started.persona if started else None,
        "domains": record.get("domains", []),
        "tasks": record.get("tasks", []),
        "complexity": record.get("complexity"),
        "success_rule": walk.options.success,
        "session": _session_metadata(view, walk.clean),
        "tool_results": walk.tool_results,
        "model_calls": walk.model_calls,
    }
    if walk.malformed:
        metadata["malformed_tool_calls"] = walk.malformed
    if "answer" in record:
        metadata["reference_answer"] = record["answer"]
    if len(sources) > 1:
        # which user message works towards which intent, in message order
        metadata["user_turn_intents"] = [t.intent_id or view.intent_id for t in view.user_turns()]
    return metadata


def _legacy_document(
    view: SessionView, common: dict[str, Any], intent_text: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    # the reference named a session by its header UUID (dashes and all); imports keep it
    started = view.started
    original = started.provenance.get("session_uuid") if started else None
    if isinstance(original, str) and original:
        common["session_id"] = original
    return {
        **{k: common[k] for k in ("status", "session_id")},
        "intent": intent_text,
        **{k: common[k] for k in LEGACY_KEYS[3:9]},
        "intent_id": view.intent_id,
        "metadata": metadata,
    }


def _current_document(
    view: SessionView,
    common: dict[str, Any],
    record: dict[str, Any],
    sources: list[dict[str, Any]],
    metadata: dict[str, Any],
) -> dict[str, Any]:
    intent_id = view.intent_id
    task_type = record.get("task_type") or ",".join(str(t) for t in record.get("tasks", []))
    return {
        **{k: common[k] for k in ("status", "session_id")},
        "intent_id": intent_id,
        **{k: common[k] for k in LEGACY_KEYS[3:9]},
        "source_intent_count": len(sources),
        "source_intent_ids": [s["intent_id"] for s in sources],
        "source_intents": [{**s, "task_type": s.get("task_type", str(task_type))} for s in sources],
        "session_finalized_by_intent_id": (
            view.closing.intent_id or intent_id if view.closing else intent_id
        ),
        "metadata": metadata,
    }


def middle_document(
    view: SessionView, system: str, messages: list[Msg], options: RenderOptions
) -> dict[str, Any]:
    """One session as a middle-format trajectory in the shape `options.middle_shape` names."""
    clean: Callable[[str], str] = redact_secrets if options.redact else (lambda s: s)
    started = view.started
    record: dict[str, Any] = dict(started.intent_record) if started else {}
    walk = _Walk(view, options, clean).run(system, messages)
    intent_text = clean(started.intent) if started else ""
    sources = _source_intents(started, view.intent_id, intent_text)
    metadata = _metadata(view, walk, record, sources)
    common = {
        "status": view.status or "open",
        "session_id": view.session_id,
        "total_steps": view.tool_call_count(),
        "enable_thinking": walk.any_reasoning,
        "messages": walk.messages,
        "tools": function_schemas(started),
        "skills": list(record.get("skills_used", [])),
        "final_output": walk.final_output,
    }
    if walk.legacy:
        return _legacy_document(view, common, intent_text, metadata)
    return _current_document(view, common, record, sources, metadata)


def _source_intents(
    started: SessionStarted | None, intent_id: str, intent_text: str
) -> list[dict[str, Any]]:
    """Every intent the session worked through (several with intents per session or an
    appended query), as the current middle shape lists them."""
    if started is None or not started.intents:
        return [{"intent_id": intent_id, "natural_language_intent": intent_text}]
    return [
        {
            "intent_id": str(i.get("intent_id", "")),
            "natural_language_intent": str(i.get("natural_language_intent", "")),
            **({"task_type": str(i["task_type"])} if "task_type" in i else {}),
        }
        for i in started.intents
    ]
