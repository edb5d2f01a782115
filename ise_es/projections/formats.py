"""Trainer formats: one session in, zero or more JSON samples out.

This module renders openai and sharegpt and dispatches; the options and errors are in
`formatoptions.py` (shared by every renderer), the middle format is written by
`middleformat.py`.

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
from typing import Any

from ise_es.projections.conversation import (
    Msg,
    conversation,
    malformed_arguments,
    system_prompt,
    turn_spans,
)
from ise_es.projections.formatoptions import (
    Excluded,
    RenderOptions,
    Unrepresentable,
    resolve_options,
    think,
)
from ise_es.projections.middleformat import middle_document
from ise_es.projections.session import SessionView, function_schemas

# the options and errors are re-exported: callers render and configure through this module
__all__ = ["Excluded", "RenderOptions", "Unrepresentable", "render", "resolve_options"]


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
        return [middle_document(view, system, messages, options)]
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
            content = think(m.reasoning, content)
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


class _ShareGptTurns:
    """The conversation turns of one sample, built by the rules S1-S6 of the module docstring:
    assistant text and reasoning wait in `texts`/`thoughts` until a turn takes them."""

    def __init__(self, messages: list[Msg], target: int, options: RenderOptions) -> None:
        self.messages = messages
        self.target = target
        self.options = options
        self.turns: list[dict[str, str]] = []
        self.texts: list[str] = []
        self.thoughts: list[str] = []

    def build(self) -> list[dict[str, str]]:
        i = 0
        while i < len(self.messages):
            m = self.messages[i]
            if m.role == "user":
                self.human(m)
                i += 1
            elif m.role == "tool":
                raise Unrepresentable(f"a tool result ({m.call_id}) with no call before it")
            else:
                i = self.assistant(i)
        self.flush_gpt()
        while self.turns and self.turns[-1]["from"] in ("human", "observation"):  # S5
            self.turns.pop()
        if not self.turns:
            raise Unrepresentable("no answered user message")
        return self.turns

    def last_from(self) -> str:
        return self.turns[-1]["from"] if self.turns else ""

    def prefix(self, value: str) -> str:
        thought = "\n\n".join(self.thoughts)
        return think(thought, value) if thought else value

    def take(self, kind: str, value: str) -> None:
        """A gpt or function_call turn: the waiting reasoning before `value`, then none waits."""
        self.turns.append({"from": kind, "value": self.prefix(value)})
        self.texts.clear()
        self.thoughts.clear()

    def flush_gpt(self) -> None:
        if not self.texts and not self.thoughts:
            return
        if self.last_from() not in ("human", "observation"):
            raise Unrepresentable("an assistant answer with no user message or result before it")
        self.take("gpt", "\n\n".join(t for t in self.texts if t))

    def human(self, m: Msg) -> None:
        self.flush_gpt()
        if self.last_from() not in ("", "gpt", "function_call"):
            raise Unrepresentable(f"user turn {m.turn} follows tool results with no answer")
        if self.last_from() == "function_call":
            raise Unrepresentable(f"tool calls before user turn {m.turn} have no results")
        self.turns.append({"from": "human", "value": m.content})

    def assistant(self, i: int) -> int:
        """Take the assistant message at `i` (and the results of its calls); the next index.
        S4: consecutive answers gather; S1/S3: tool calls end the gathering."""
        m = self.messages[i]
        if m.reasoning and i >= self.target and self.options.reasoning == "think":
            self.thoughts.append(m.reasoning)
        if m.content:
            self.texts.append(m.content)
        if not m.tool_calls:
            return i + 1
        broken = (
            {c.id for c in m.tool_calls if malformed_arguments(c.arguments)}
            if self.options.malformed == "mask"
            else set()
        )
        if len(broken) == len(m.tool_calls):  # M1: nothing left to teach in this message
            self.texts.clear()
            self.thoughts.clear()
            return self.results_end(i + 1)
        self.function_call(m, broken)
        return self.observation(i + 1, broken)

    def function_call(self, m: Msg, broken: set[str]) -> None:
        if self.last_from() not in ("human", "observation"):
            raise Unrepresentable("tool calls with no user message or result before them")
        calls = [_call_object(c.name, c.arguments) for c in m.tool_calls if c.id not in broken]
        text = "\n\n".join(t for t in self.texts if t)
        if text:
            calls[0]["content"] = text
        self.take(
            "function_call", json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
        )

    def results_end(self, i: int) -> int:
        """The index after the tool results that start at `i`."""
        while i < len(self.messages) and self.messages[i].role == "tool":
            i += 1
        return i

    def observation(self, i: int, broken: set[str]) -> int:
        """S2: the results starting at `i` (but those of broken calls) as one turn."""
        end = self.results_end(i)
        results = [r.content for r in self.messages[i:end] if r.call_id not in broken]
        if not results:
            raise Unrepresentable("tool calls without results")
        value = results[0] if len(results) == 1 else json.dumps(results, ensure_ascii=False)
        self.turns.append({"from": "observation", "value": value})
        return end


def _sharegpt(
    view: SessionView, system: str, messages: list[Msg], target: int, options: RenderOptions
) -> dict[str, Any]:
    turns = _ShareGptTurns(messages, target, options).build()
    tools = [s["function"] for s in function_schemas(view.started)]
    return {
        "conversations": turns,
        "system": system,
        "tools": json.dumps(tools, ensure_ascii=False),
    }
