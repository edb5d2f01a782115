"""Trainer formats: one session in, zero or more JSON samples out.

openai
    `{"messages": [...], "tools": [...]}` as OpenAI fine-tuning and TRL read it: assistant
    `tool_calls[].function.arguments` is the JSON *string* the model emitted, `tool` messages
    carry `tool_call_id`. In per-turn samples the history's assistant messages get
    `"weight": 0` (OpenAI's key for "do not train on this message").
sharegpt
    LLaMA-Factory: `conversations` of human / gpt / function_call / observation, `system` and
    `tools` (a JSON string of bare `{name, description, parameters}`) beside it. Its roles must
    alternate strictly (human or observation, then gpt or function_call), which a recorded
    trajectory does not always do. The rules, applied in this order:
      S1 parallel tool calls of one assistant message become one function_call turn whose
         value is a JSON list of `{name, arguments}` (LLaMA-Factory accepts a list).
      S2 their results become one observation turn: the result text when there is one, else
         a JSON list of the result texts in call order.
      S3 visible text that accompanies tool calls cannot be a gpt turn of its own (two
         assistant turns in a row); it is kept in the first call object under `"content"`.
      S4 consecutive assistant messages without tool calls (e.g. one holding only thinking,
         then the answer) merge into one gpt turn: texts and reasoning joined by a blank line;
         text and reasoning waiting when a tool-calling message follows merge into it.
      S5 trailing human or observation turns (nothing answers them) are dropped.
      S6 anything else that cannot alternate (a user message right after tool results, tool
         calls without results, no first user message) makes the session unrepresentable:
         it is skipped and counted, never emitted half-right.
    Reasoning cannot be a separate field here: `think` (the default) prefixes gpt and
    function_call values with a `<think>` block (LLaMA-Factory strips and re-inserts that
    prefix of function_call values), `drop` removes it, `field` is refused.
middle
    The ISE reference "middle format", one object per trajectory, in either of the two shapes
    the reference has written (`middle_shape`):
      current (default) `status, session_id, intent_id, total_steps, enable_thinking,
         messages, tools, skills, final_output, source_intent_count, source_intent_ids,
         source_intents, session_finalized_by_intent_id, metadata`; arguments as JSON
         objects (a malformed one stays the raw string); tool results and reasoning exactly
         as the agent saw and wrote them (whitespace included: that is what the model read
         and must learn to read).
      legacy `status, session_id, intent, total_steps, enable_thinking, messages, tools,
         skills, final_output, intent_id, metadata`, in that order; arguments as the JSON
         strings the model emitted; tool results and reasoning stripped of leading and
         trailing whitespace, as the reference's files are.
    `tools` are the schemas the agent had (SessionStarted.tool_schemas: recorded, given to
    `import openclaw --tools`, or inferred from the calls seen, as provenance says).
    `success` (`success` option): `strict` (default) is `not call_failed(...)`, the rule in
    `session.FAILURE_RULE` (a non-zero exit, an error status, `details.error` or an
    `{"error": ...}` result is a failure); `reference` is `not isError`, the reference
    converter's values. Usage, latency, exit codes and the raw details go under `metadata`.

Malformed tool-call arguments (`malformed`; arguments that are not a JSON object, see
`malformed_arguments`): a chat template renders them as a `<tool_call>` block that is not
JSON, so training on them teaches broken calls, while the recovery after them is worth keeping.
  mask (default) openai: `"weight": 0` on that assistant message (OpenAI fine-tuning's
       per-message weight; the message and its error result stay as context). sharegpt has
       no weights: the broken call and its observation are left out (M1: a message whose
       calls are all broken goes with its text and reasoning; the turns still alternate).
       middle is an archive, not a trainer format: kept as recorded, and
       `metadata.malformed_tool_calls` lists `{message_index, tool_call_id}`.
  drop the whole trajectory is skipped (counted as "malformed tool-call arguments").
  keep exported as recorded.

Reasoning: `field` puts it in `reasoning_content`, `think` renders it inline as Qwen3 chat
templates do (`<think>\\n...\\n</think>\\n\\n` before the text), `drop` removes it. Per-turn
samples keep reasoning only on the target turn (the messages after its user message), as a
Qwen3 template renders history at inference.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import msgspec

from ise_es.errors import ConfigError
from ise_es.projections.conversation import (
    Msg,
    conversation,
    malformed_arguments,
    system_prompt,
    turn_spans,
)
from ise_es.projections.secrets import redact as redact_secrets
from ise_es.projections.session import SessionView, function_schemas, reference_failed

__all__ = [
    "FORMATS",
    "LEGACY_KEYS",
    "Excluded",
    "Format",
    "Malformed",
    "MiddleShape",
    "Reasoning",
    "RenderOptions",
    "Samples",
    "Success",
    "Unrepresentable",
    "render",
    "resolve_options",
]

Format = Literal["openai", "sharegpt", "middle"]
Reasoning = Literal["field", "think", "drop"]
Samples = Literal["trajectory", "per-turn"]
Malformed = Literal["mask", "drop", "keep"]
MiddleShape = Literal["current", "legacy"]
Success = Literal["strict", "reference"]
FORMATS: tuple[Format, ...] = ("openai", "sharegpt", "middle")
LEGACY_KEYS = (
    "status",
    "session_id",
    "intent",
    "total_steps",
    "enable_thinking",
    "messages",
    "tools",
    "skills",
    "final_output",
    "intent_id",
    "metadata",
)
"""The legacy middle shape's keys, in the order its files have them."""


class Unrepresentable(Exception):
    """The session cannot be expressed in the chosen format without losing or inventing
    content; the exporter skips and counts it."""


class Excluded(Unrepresentable):
    """The options exclude the session (`malformed="drop"`); `reason` is how it is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RenderOptions(msgspec.Struct, frozen=True, kw_only=True):
    format: Format = "openai"
    reasoning: Reasoning = "field"
    samples: Samples = "trajectory"
    redact: bool = False
    malformed: Malformed = "mask"
    middle_shape: MiddleShape = "current"
    success: Success = "strict"


def resolve_options(
    format: str = "openai",
    reasoning: str | None = None,
    samples: str = "trajectory",
    *,
    redact: bool = False,
    malformed: str = "mask",
    middle_shape: str = "current",
    success: str = "strict",
) -> RenderOptions:
    """Check a combination of options and fill the format's default reasoning mode.

    Raises:
        ConfigError: an unknown value, or a combination the format cannot express.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if reasoning is None:
        reasoning = "think" if format == "sharegpt" else "field"
    if reasoning not in ("field", "think", "drop"):
        raise ConfigError(f"unknown reasoning mode {reasoning!r}: use field, think or drop")
    if samples not in ("trajectory", "per-turn"):
        raise ConfigError(f"unknown samples mode {samples!r}: use trajectory or per-turn")
    if format == "sharegpt" and reasoning == "field":
        raise ConfigError(
            "sharegpt has no reasoning field: use --reasoning think (inline <think> blocks) "
            "or --reasoning drop"
        )
    if malformed not in ("mask", "drop", "keep"):
        raise ConfigError(f"unknown --malformed {malformed!r}: use mask, drop or keep")
    if middle_shape not in ("current", "legacy"):
        raise ConfigError(f"unknown middle shape {middle_shape!r}: use current or legacy")
    if success not in ("strict", "reference"):
        raise ConfigError(f"unknown success rule {success!r}: use strict or reference")
    if format != "middle" and (middle_shape != "current" or success != "strict"):
        raise ConfigError(
            "--middle-shape and --success shape the middle format only: add --format middle"
        )
    if format == "middle" and samples == "per-turn":
        raise ConfigError(
            "the middle format holds whole trajectories: use --samples trajectory, or "
            "--format openai/sharegpt for per-turn samples"
        )
    return RenderOptions(
        format=format,
        reasoning=reasoning,  # type: ignore[arg-type]
        samples=samples,  # type: ignore[arg-type]
        redact=redact,
        malformed=malformed,  # type: ignore[arg-type]
        middle_shape=middle_shape,  # type: ignore[arg-type]
        success=success,  # type: ignore[arg-type]
    )


def _think(reasoning: str, text: str) -> str:
    return f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{text}"


def render(view: SessionView, options: RenderOptions) -> list[dict[str, Any]]:
    """The samples of one session in the chosen format.

    Raises:
        Unrepresentable: sharegpt cannot express this session (rule S6).
    """
    messages = conversation(view, redact=options.redact)
    system = system_prompt(view, redact=options.redact)
    if options.malformed == "drop" and any(
        malformed_arguments(c.arguments) for m in messages for c in m.tool_calls
    ):
        raise Excluded("malformed tool-call arguments")
    if options.format == "middle":
        return [_middle(view, system, messages, options)]
    renderer: Callable[..., dict[str, Any]] = _openai if options.format == "openai" else _sharegpt
    if options.samples == "trajectory":
        if not any(m.role == "assistant" for m in messages):
            return []
        return [renderer(view, system, messages, 0, options)]
    return [
        renderer(view, system, messages[:end], start, options)
        for start, end in turn_spans(messages)
    ]


# -------------------------------------------------------------------------------- openai


def _openai(
    view: SessionView, system: str, messages: list[Msg], target: int, options: RenderOptions
) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    for i, m in enumerate(messages):
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.call_id, "content": m.content})
        else:
            masked = options.malformed == "mask" and any(
                malformed_arguments(c.arguments) for c in m.tool_calls
            )
            out.append(_openai_assistant(m, i >= target, options, history=i < target or masked))
    return {"messages": out, "tools": function_schemas(view.started)}


def _openai_assistant(
    m: Msg, keep_reasoning: bool, options: RenderOptions, *, history: bool
) -> dict[str, Any]:
    content = m.content
    message: dict[str, Any] = {"role": "assistant"}
    if m.reasoning and keep_reasoning:
        if options.reasoning == "think":
            content = _think(m.reasoning, content)
        elif options.reasoning == "field":
            message["reasoning_content"] = m.reasoning
    message["content"] = content
    if m.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if history:
        message["weight"] = 0
    return message


# -------------------------------------------------------------------------------- sharegpt


def _call_object(name: str, arguments: str) -> dict[str, Any]:
    try:
        parsed: Any = json.loads(arguments)
    except ValueError:
        parsed = arguments  # malformed arguments stay as emitted: the audit flags them
    return {"name": name, "arguments": parsed}


def _sharegpt(
    view: SessionView, system: str, messages: list[Msg], target: int, options: RenderOptions
) -> dict[str, Any]:
    turns: list[dict[str, str]] = []
    texts: list[str] = []
    thoughts: list[str] = []

    def last_from() -> str:
        return turns[-1]["from"] if turns else ""

    def prefix(value: str) -> str:
        thought = "\n\n".join(thoughts)
        return _think(thought, value) if thought else value

    def flush_gpt() -> None:
        if not texts and not thoughts:
            return
        if last_from() not in ("human", "observation"):
            raise Unrepresentable("an assistant answer with no user message or result before it")
        turns.append({"from": "gpt", "value": prefix("\n\n".join(t for t in texts if t))})
        texts.clear()
        thoughts.clear()

    i = 0
    while i < len(messages):
        m = messages[i]
        if m.role == "user":
            flush_gpt()
            if last_from() not in ("", "gpt", "function_call"):
                raise Unrepresentable(f"user turn {m.turn} follows tool results with no answer")
            if last_from() == "function_call":
                raise Unrepresentable(f"tool calls before user turn {m.turn} have no results")
            turns.append({"from": "human", "value": m.content})
            i += 1
            continue
        if m.role == "tool":
            raise Unrepresentable(f"a tool result ({m.call_id}) with no call before it")
        # assistant (S4: gather consecutive answers; S1/S3: tool calls end the gathering)
        if m.reasoning and i >= target and options.reasoning == "think":
            thoughts.append(m.reasoning)
        if m.content:
            texts.append(m.content)
        if not m.tool_calls:
            i += 1
            continue
        broken = (
            {c.id for c in m.tool_calls if malformed_arguments(c.arguments)}
            if options.malformed == "mask"
            else set()
        )
        if len(broken) == len(m.tool_calls):  # M1: nothing left to teach in this message
            texts.clear()
            thoughts.clear()
            i += 1
            while i < len(messages) and messages[i].role == "tool":
                i += 1
            continue
        if last_from() not in ("human", "observation"):
            raise Unrepresentable("tool calls with no user message or result before them")
        calls = [_call_object(c.name, c.arguments) for c in m.tool_calls if c.id not in broken]
        text = "\n\n".join(t for t in texts if t)
        if text:
            calls[0]["content"] = text
        value = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
        turns.append({"from": "function_call", "value": prefix(value)})
        texts.clear()
        thoughts.clear()
        i += 1
        results: list[str] = []
        while i < len(messages) and messages[i].role == "tool":
            if messages[i].call_id not in broken:
                results.append(messages[i].content)
            i += 1
        if not results:
            raise Unrepresentable("tool calls without results")
        value = results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False)
        turns.append({"from": "observation", "value": value})
    flush_gpt()
    while turns and turns[-1]["from"] in ("human", "observation"):  # S5
        turns.pop()
    if not turns:
        raise Unrepresentable("no answered user message")
    tools = [s["function"] for s in function_schemas(view.started)]
    return {
        "conversations": turns,
        "system": system,
        "tools": json.dumps(tools, ensure_ascii=False),
    }


# -------------------------------------------------------------------------------- middle


def _arguments_value(arguments: str) -> Any:
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


def _middle_tool_message(m: Msg, options: RenderOptions, legacy: bool) -> dict[str, Any]:
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


def _middle(
    view: SessionView, system: str, messages: list[Msg], options: RenderOptions
) -> dict[str, Any]:
    clean: Callable[[str], str] = redact_secrets if options.redact else (lambda s: s)
    legacy = options.middle_shape == "legacy"
    started = view.started
    record: dict[str, Any] = dict(started.intent_record) if started else {}
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": system})
    tool_results: list[dict[str, Any]] = []
    model_calls: list[dict[str, Any]] = []
    malformed: list[dict[str, Any]] = []
    any_reasoning = False
    final_output = ""
    for m in messages:
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "assistant":
            message: dict[str, Any] = {"role": "assistant", "content": m.content}
            if m.reasoning and options.reasoning != "drop":
                any_reasoning = True
                reasoning = m.reasoning.strip() if legacy else m.reasoning
                if options.reasoning == "field":
                    message["reasoning_content"] = reasoning
                else:
                    message["content"] = _think(reasoning, m.content)
            if m.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": c.arguments if legacy else _arguments_value(c.arguments),
                        },
                    }
                    for c in m.tool_calls
                ]
                malformed.extend(
                    {"message_index": len(out), "tool_call_id": c.id}
                    for c in m.tool_calls
                    if malformed_arguments(c.arguments)
                )
            final_output = m.content
            if m.model_call is not None:
                call = m.model_call
                model_calls.append(
                    {
                        "message_index": len(out),
                        "model": call.model,
                        "prompt_tokens": call.usage.prompt_tokens,
                        "completion_tokens": call.usage.completion_tokens,
                        "total_tokens": call.usage.total_tokens,
                        "latency_ms": call.latency_ms,
                        "finish_reason": call.finish_reason,
                    }
                )
            out.append(message)
        else:
            out.append(_middle_tool_message(m, options, legacy))
            if m.finished is not None:
                f = m.finished
                tool_results.append(
                    {
                        "tool_call_id": f.call_id,
                        "name": f.tool,
                        "exit_code": f.exit_code,
                        "is_error": f.is_error,
                        "timed_out": f.timed_out,
                        "duration_ms": f.duration_ms,
                        "error": clean(f.error) if f.error else None,
                        "details": _scrub(f.details, clean),
                        "files_changed": sum(len(d.changes) for d in view.diffs.get(f.call_id, [])),
                    }
                )
    intent_text = clean(started.intent) if started else ""
    intent_id = view.intent_id
    ended = view.ended
    metadata: dict[str, Any] = {
        "persona": started.persona if started else None,
        "domains": record.get("domains", []),
        "tasks": record.get("tasks", []),
        "complexity": record.get("complexity"),
        "success_rule": options.success,
        "session": {
            "stream_id": view.stream_id,
            "status": view.status,
            "reason": ended.reason if ended else "",
            "user_turns": len(view.user_turns()),
            "sandbox_backend": started.sandbox_backend if started else "",
            "template": started.template if started else "",
            "template_digest": started.template_digest if started else "",
            "models": [msgspec.to_builtins(s) for s in started.models] if started else [],
            "provenance": _scrub(started.provenance, clean) if started else {},
        },
        "tool_results": tool_results,
        "model_calls": model_calls,
    }
    if malformed:
        metadata["malformed_tool_calls"] = malformed
    if "answer" in record:
        metadata["reference_answer"] = record["answer"]
    sources = _source_intents(view, intent_id, intent_text, record)
    if len(sources) > 1:
        # which user message works towards which intent, in message order
        metadata["user_turn_intents"] = [t.intent_id or intent_id for t in view.user_turns()]
    common = {
        "status": view.status or "open",
        "session_id": view.session_id,
        "total_steps": view.tool_call_count(),
        "enable_thinking": any_reasoning,
        "messages": out,
        "tools": function_schemas(started),
        "skills": list(record.get("skills_used", [])),
        "final_output": final_output,
    }
    if legacy:
        # the reference named a session by its header UUID (dashes and all); imports keep it
        original = started.provenance.get("session_uuid") if started else None
        if isinstance(original, str) and original:
            common["session_id"] = original
        return {
            **{k: common[k] for k in ("status", "session_id")},
            "intent": intent_text,
            **{k: common[k] for k in LEGACY_KEYS[3:9]},
            "intent_id": intent_id,
            "metadata": metadata,
        }
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


def _source_intents(
    view: SessionView, intent_id: str, intent_text: str, record: dict[str, Any]
) -> list[dict[str, Any]]:
    """Every intent the session worked through (several with intents per session or an
    appended query), as the current middle shape lists them."""
    started = view.started
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
