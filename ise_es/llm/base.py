"""The LLM client contract: role configuration, the client protocol and what one call returns.

Every role (agent, user simulator, intent renderer, persona generator) reaches its model through
a `ChatClient`. Messages are plain OpenAI chat messages (``{"role": ..., "content": ...}``), so
the agent loop and the simulator build them without a wrapper type. A call returns a
`ChatResult` that already holds everything the recorder writes: the canonical request bytes
(stored as a blob), the parsed assistant message, usage, latency and the failed attempts.

This module does no I/O; `ise_es.llm.openai_client` is the HTTP implementation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Protocol

import msgspec

from ise_es.errors import ConfigError, LLMError
from ise_es.events import ModelCall, ModelSpec, ToolCall, Usage

__all__ = [
    "ROLES",
    "ChatClient",
    "ChatResult",
    "JsonMode",
    "Message",
    "RequestInfo",
    "RetryRecord",
    "RoleConfig",
    "canonical_request",
    "encode_request",
    "failed_model_call",
    "split_inline_reasoning",
]

ROLES = ("agent", "user", "render", "persona")

Message = Mapping[str, Any]
"""One OpenAI chat message: ``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``."""

JsonMode = Literal["none", "json_object", "json_schema"]


class RoleConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How one role reaches its model. Never holds the API key itself, only the variable's name."""

    role: Literal["agent", "user", "render", "persona"]
    model: str
    base_url: str = "http://127.0.0.1:8000/v1"
    """The OpenAI-compatible endpoint, including the /v1 suffix (vLLM: http://HOST:8000/v1)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the key; None for servers that want no key."""
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] = 120.0
    """Per attempt: connect + read of one HTTP request."""
    max_retries: Annotated[int, msgspec.Meta(ge=0)] = 4
    """Retries after the first attempt, on 408/429/5xx, timeouts and connection errors."""
    backoff_base_s: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    backoff_max_s: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    """Upper bound of every wait, including one asked for by Retry-After."""
    json_mode: JsonMode = "none"
    """Structured output the server supports: `json_schema` (vLLM, OpenAI), `json_object`, or
    `none` (the caller then parses free text)."""
    extra_body: dict[str, Any] = {}
    """Extra request fields passed through verbatim (e.g. vLLM's chat_template_kwargs)."""

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> RoleConfig:
        """Validate a role's settings from a config file or flags.

        Raises:
            ConfigError: unknown field, wrong type or out-of-range value; names `source` and the
                field.
        """
        try:
            return msgspec.convert(dict(data), cls)
        except msgspec.ValidationError as e:
            raise ConfigError(f"{source}: {e}") from e

    def model_spec(self) -> ModelSpec:
        """The role as recorded in SessionStarted.models (no key, no key variable)."""
        return ModelSpec(
            role=self.role,
            backend="openai",
            model=self.model,
            base_url=self.base_url,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )

    def parameters(self) -> dict[str, Any]:
        """The sampling and transport parameters as recorded in ModelCall.parameters."""
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
        }
        if self.extra_body:
            params["extra_body"] = self.extra_body
        return params


class RetryRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One failed attempt of a call."""

    attempt: int
    """0-based attempt number."""
    status: int | None
    """HTTP status; None for a timeout or connection error."""
    error: str
    waited_s: float
    """How long the client slept before the next attempt (0 after the last one)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "status": self.status,
            "error": self.error,
            "waited_s": self.waited_s,
        }


class RequestInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What was asked of which endpoint: enough to record a ModelCall even when it failed."""

    role: str
    model: str
    base_url: str
    parameters: dict[str, Any]
    body: bytes
    """Canonical JSON of the request (model, messages, tools, response_format, sampling)."""

    @property
    def digest(self) -> str:
        """sha256 hex of `body`: the blob digest the store gives these bytes."""
        return hashlib.sha256(self.body).hexdigest()


class ChatResult(msgspec.Struct, frozen=True, kw_only=True):
    """One successful chat completion, parsed, with its request and the attempts that failed."""

    request: RequestInfo
    content: str
    """The assistant's text with any inline <think> block removed."""
    reasoning: str | None
    """From `reasoning_content` (or `reasoning`) or from inline <think>...</think>."""
    tool_calls: list[ToolCall]
    finish_reason: str | None
    usage: Usage
    latency_ms: float
    """Wall time of the successful attempt (waits and failed attempts are in `retries`)."""
    retries: list[RetryRecord]
    response: dict[str, Any]
    """The assistant message exactly as the server returned it (decoded JSON)."""
    response_model: str = ""
    """The model name the server reported."""

    @property
    def request_body(self) -> bytes:
        return self.request.body

    @property
    def request_digest(self) -> str:
        return self.request.digest

    def model_call(self) -> ModelCall:
        """The ModelCall event for this call (store `request_body` as a blob beside it).

        `response` is the message exactly as returned (inline <think> included); the parsed
        text, reasoning and tool calls go into the AgentMessage or UserTurn that follows.
        """
        return ModelCall(
            role=self.request.role,
            model=self.request.model,
            backend="openai",
            base_url=self.request.base_url,
            parameters=self.request.parameters,
            request_digest=self.request.digest,
            response=self.response,
            finish_reason=self.finish_reason,
            usage=self.usage,
            latency_ms=self.latency_ms,
            retries=[r.as_dict() for r in self.retries],
        )

    def assistant_message(self, *, include_reasoning: bool = False) -> dict[str, Any]:
        """The assistant message to append to the conversation for the next request.

        Reasoning is left out by default: chat templates of reasoning models drop earlier turns'
        thinking, and sending it back would change what the model sees.
        """
        message: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        if include_reasoning and self.reasoning is not None:
            message["reasoning_content"] = self.reasoning
        return message


class ChatClient(Protocol):
    """A model endpoint for one role."""

    @property
    def config(self) -> RoleConfig: ...

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """Send one chat completion request, retrying transient failures.

        Args:
            messages: the conversation in OpenAI chat format.
            tools: OpenAI function schemas (``{"type": "function", "function": {...}}``).
            response_format: passed through (``{"type": "json_object"}`` or a json_schema).

        Raises:
            LLMError: every attempt failed, or the server answered with an error not worth
                retrying (4xx other than 408/429, a malformed body); `endpoint`, `status`,
                `retries` and `call` (a RequestInfo) are set.
        """
        ...

    def close(self) -> None: ...


def canonical_request(
    config: RoleConfig,
    messages: Sequence[Message],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body as sent: the same dict is posted and hashed."""
    body: dict[str, Any] = {"model": config.model, "messages": [dict(m) for m in messages]}
    if tools:
        body["tools"] = [dict(t) for t in tools]
    if response_format is not None:
        body["response_format"] = dict(response_format)
    if config.temperature is not None:
        body["temperature"] = config.temperature
    if config.max_tokens is not None:
        body["max_tokens"] = config.max_tokens
    for key, value in config.extra_body.items():
        body.setdefault(key, value)
    return body


_encoder = msgspec.json.Encoder(order="sorted")


def encode_request(body: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, compact): equal requests give equal bytes and digests."""
    try:
        return _encoder.encode(body)
    except (TypeError, msgspec.EncodeError) as e:
        raise LLMError(f"request is not JSON-serialisable: {e}") from e


_THINK_BLOCK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def split_inline_reasoning(content: str) -> tuple[str, str | None]:
    """Separate inline ``<think>...</think>`` reasoning from the answer.

    Handles the shapes reasoning models produce when the server has no reasoning parser:
    one or more complete blocks; a closing tag with no opening one (Qwen3 templates put the
    opening ``<think>`` in the prompt); an opening tag never closed (output cut by max_tokens),
    where everything after it is reasoning.

    Returns:
        (content without the reasoning, reasoning or None when there was none)
    """
    if "<think>" not in content and "</think>" not in content:
        return content, None
    parts: list[str] = []
    head, sep, tail = content.partition("</think>")
    if sep and "<think>" not in head:
        parts.append(head)
        content = tail
    for match in _THINK_BLOCK.finditer(content):
        parts.append(match.group(1))
    content = _THINK_BLOCK.sub("", content)
    start = content.find("<think>")
    if start != -1:
        parts.append(content[start + len("<think>") :])
        content = content[:start]
    reasoning = "\n".join(p.strip() for p in parts if p.strip())
    return content.strip(), reasoning or None


def failed_model_call(error: LLMError, *, latency_ms: float = 0.0) -> ModelCall:
    """The ModelCall event recording a call that failed after its retries.

    Store ``error.call.body`` as a blob beside it when `error.call` is a RequestInfo.
    """
    call = error.call if isinstance(error.call, RequestInfo) else None
    return ModelCall(
        role=call.role if call else "",
        model=call.model if call else "",
        backend="openai",
        base_url=call.base_url if call else error.endpoint,
        parameters=call.parameters if call else {},
        request_digest=call.digest if call else None,
        latency_ms=latency_ms,
        retries=list(error.retries),
        error=str(error),
    )
