"""`ChatClient` over an OpenAI-compatible HTTP endpoint (vLLM, SGLang, llama.cpp, OpenAI).

The `openai` package does the HTTP; its own retries are switched off so that every attempt is
ours to count, wait for and record. The response body is decoded here rather than through the
package's models so that tool-call arguments stay byte-for-byte as the server sent them (even
when they are not valid JSON) and non-standard fields such as `reasoning_content` are kept.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
import openai

from ise_es.errors import ConfigError, LLMError
from ise_es.events import ToolCall, Usage
from ise_es.llm.base import (
    ChatResult,
    Message,
    RequestInfo,
    RetryRecord,
    RoleConfig,
    canonical_request,
    encode_request,
    split_inline_reasoning,
)

__all__ = ["OpenAIChatClient", "backoff_delay", "parse_retry_after"]

# 408 and 409 are what OpenAI's own client retries besides 429/5xx; 409 (conflict) is left out
# because no inference server uses it for a transient condition.
_RETRYABLE_STATUS = frozenset({408, 429})
_NO_KEY = "EMPTY"
"""vLLM and most local servers accept any key when none is configured; the openai package
refuses to start without one."""


def parse_retry_after(headers: Mapping[str, str], *, now: float) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def backoff_delay(attempt: int, config: RoleConfig, rng: random.Random) -> float:
    """Exponential backoff with jitter in [half, full] of the step, so waits stay spread out
    across workers that failed together but never shrink towards zero."""
    step = min(config.backoff_max_s, config.backoff_base_s * (2.0**attempt))
    return step * (0.5 + 0.5 * rng.random())


class _Function(msgspec.Struct):
    name: str = ""
    arguments: Any = ""


class _ToolCall(msgspec.Struct):
    id: str | None = None
    function: _Function = msgspec.field(default_factory=_Function)


class _Message(msgspec.Struct):
    content: Any = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Details(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    completion_tokens_details: _Details | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice]
    model: str = ""
    usage: _Usage | None = None


_completion_decoder = msgspec.json.Decoder(_Completion)
_compact = msgspec.json.Encoder()


class _MalformedResponse(Exception):
    """A 200 whose body is not a chat completion."""


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Some servers return content parts even for text-only answers.
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    raise _MalformedResponse(f"message content has type {type(content).__name__}")


def _parse(body: bytes, request: RequestInfo) -> tuple[_Completion, dict[str, Any]]:
    try:
        completion = _completion_decoder.decode(body)
        raw_message = msgspec.json.decode(body)["choices"][0]["message"]
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise _MalformedResponse(f"not a chat completion: {e}") from e
    except (IndexError, KeyError, TypeError) as e:
        raise _MalformedResponse("no choices in the response") from e
    if not isinstance(raw_message, dict):
        raise _MalformedResponse("choices[0].message is not an object")
    return completion, raw_message


class _Failure(NamedTuple):
    """How one attempt at a completion failed."""

    status: int | None
    error: str
    retryable: bool
    retry_after: float | None = None
    """The server's Retry-After, in seconds."""

    def record(self, attempt: int, *, waited_s: float) -> RetryRecord:
        return RetryRecord(attempt=attempt, status=self.status, error=self.error, waited_s=waited_s)


class OpenAIChatClient:
    """One role's model endpoint.

    Args:
        config: the role's settings.
        environ: where the API key variable is looked up (pass ``os.environ`` at the edge).
        sleep: called with each backoff wait in seconds (tests pass a recorder).
        rng: jitter source (seed it for reproducible waits).
        clock: monotonic seconds, for latency.
        wall_clock: epoch seconds, for Retry-After given as an HTTP date.

    Raises:
        ConfigError: `api_key_env` names a variable that `environ` does not have.
    """

    def __init__(
        self,
        config: RoleConfig,
        *,
        environ: Mapping[str, str],
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        if config.api_key_env is None or config.api_key_env.lower() == "none":
            api_key = _NO_KEY  # only ever sent when the role has no key
        else:
            found = environ.get(config.api_key_env)
            if not found:
                raise ConfigError(
                    f"role {config.role!r}: environment variable {config.api_key_env} "
                    "(api_key_env) is not set; export it or set api_key_env to none"
                )
            api_key = found
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._wall_clock = wall_clock
        self._client = openai.OpenAI(
            api_key=api_key,
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
        )

    @property
    def config(self) -> RoleConfig:
        return self._config

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAIChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        response_format: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """See `ChatClient.complete`."""
        config = self._config
        body = canonical_request(config, messages, tools=tools, response_format=response_format)
        params = config.parameters()
        if response_format is not None:
            params["response_format"] = response_format.get("type")
        request = RequestInfo(
            role=config.role,
            model=config.model,
            base_url=config.base_url,
            parameters=params,
            body=encode_request(body),
        )
        kwargs = {k: v for k, v in body.items() if k not in config.extra_body}
        extra = {k: body[k] for k in config.extra_body}
        retries: list[RetryRecord] = []
        for attempt in range(config.max_retries + 1):
            outcome = self._attempt(kwargs, extra, request, retries)
            if isinstance(outcome, ChatResult):
                return outcome
            if attempt == config.max_retries or not outcome.retryable:
                retries.append(outcome.record(attempt, waited_s=0))
                raise LLMError(
                    f"{config.role} model {config.model!r} at {config.base_url}: {outcome.error}"
                    + (f" (after {attempt + 1} attempts)" if attempt else ""),
                    endpoint=config.base_url,
                    status=outcome.status,
                    retries=[r.as_dict() for r in retries],
                    call=request,
                )
            wait = outcome.retry_after
            if wait is None:
                wait = backoff_delay(attempt, config, self._rng)
            wait = min(wait, config.backoff_max_s)
            retries.append(outcome.record(attempt, waited_s=wait))
            self._sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    def _attempt(
        self,
        kwargs: dict[str, Any],
        extra: dict[str, Any],
        request: RequestInfo,
        retries: list[RetryRecord],
    ) -> ChatResult | _Failure:
        """One request: its parsed result, or how it failed and whether to try again."""
        config = self._config
        started = self._clock()
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                **kwargs, extra_body=extra or None
            )
            latency_ms = (self._clock() - started) * 1000.0
            return self._result(raw.content, request, latency_ms, retries)
        except openai.APITimeoutError:
            return _Failure(None, f"timeout after {config.timeout_s}s", retryable=True)
        except openai.APIConnectionError as e:
            return _Failure(None, f"connection error: {_cause(e)}", retryable=True)
        except openai.APIStatusError as e:
            status = e.status_code
            return _Failure(
                status,
                f"HTTP {status}: {_short(e.message)}",
                retryable=status in _RETRYABLE_STATUS or status >= 500,
                retry_after=parse_retry_after(e.response.headers, now=self._wall_clock()),
            )
        except _MalformedResponse as e:
            return _Failure(200, f"malformed response: {e}", retryable=False)

    def _result(
        self,
        payload: bytes,
        request: RequestInfo,
        latency_ms: float,
        retries: list[RetryRecord],
    ) -> ChatResult:
        completion, raw_message = _parse(payload, request)
        choice = completion.choices[0]
        message = choice.message
        content, inline = split_inline_reasoning(_text_of(message.content))
        field = (
            message.reasoning_content
            if message.reasoning_content is not None
            else message.reasoning
        )
        if field is not None and inline is not None:
            reasoning: str | None = f"{field}\n{inline}"
        else:
            reasoning = field if field is not None else inline
        calls = []
        for index, call in enumerate(message.tool_calls or []):
            arguments = call.function.arguments
            if not isinstance(arguments, str):
                # The spec says a JSON string; a few servers send the object itself.
                arguments = _compact.encode(arguments).decode()
            calls.append(
                ToolCall(
                    id=call.id or f"call_{request.digest[:12]}_{index}",
                    name=call.function.name,
                    arguments=arguments,
                )
            )
        usage = completion.usage or _Usage()
        details = usage.completion_tokens_details
        return ChatResult(
            request=request,
            content=content,
            reasoning=reasoning,
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            usage=Usage(
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                total_tokens=usage.total_tokens,
                reasoning_tokens=details.reasoning_tokens if details else None,
            ),
            latency_ms=latency_ms,
            retries=list(retries),
            response=raw_message,
            response_model=completion.model,
        )


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cause(error: BaseException) -> str:
    """The innermost cause's message: 'Connection error.' alone does not say what went wrong."""
    while error.__cause__ is not None:
        error = error.__cause__
    return _short(str(error) or type(error).__name__)
