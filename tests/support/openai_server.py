"""A scripted OpenAI-compatible chat server on 127.0.0.1 for tests.

A real HTTP server in a background thread that answers ``POST /v1/chat/completions`` the way vLLM
does: tool calls whose `arguments` are JSON strings (sent verbatim, so malformed JSON reaches the
client as a model would emit it), reasoning either in `reasoning_content` or inline as
``<think>...</think>`` depending on the model, usage figures, and error statuses with headers
(429 + Retry-After, 500...). It records every request it receives so tests can assert what the
client sent.

Two ways to decide the answers:
- a script: ``server.script("model", Reply(...), Error(429, retry_after=2), ...)`` queues
  replies per model name, played in order;
- a handler: ``server.handle("model", fn)`` where ``fn(request) -> Reply | Error`` looks at the
  request (the conversation so far) and decides; used when the content drives the answer.
A scripted reply queued for a model is played before its handler is asked.

A request for a model with neither gets 404 (vLLM's answer for an unknown model); a script that
ran out gets 400 (not retried, so a test fails fast with the message). Both are kept in
`server.unexpected`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

__all__ = [
    "Error",
    "RecordedRequest",
    "Reply",
    "ScriptedOpenAIServer",
    "ScriptedToolCall",
]

ReasoningStyle = Literal["field", "inline"]


@dataclass(frozen=True)
class ScriptedToolCall:
    name: str
    arguments: str
    """Sent verbatim as the `arguments` string: may be invalid JSON on purpose."""
    id: str | None = None
    """None: the server numbers it like vLLM does (chatcmpl-tool-...)."""


@dataclass(frozen=True)
class Reply:
    """One successful chat completion."""

    content: str | None = ""
    reasoning: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    finish_reason: str | None = None
    """None: "tool_calls" when there are tool calls, else "stop"."""
    usage: tuple[int, int] | None = None
    """(prompt_tokens, completion_tokens); None: estimated from the text lengths."""
    reasoning_style: ReasoningStyle | None = None
    """None: the model's style as configured on the server."""
    delay_s: float = 0.0
    raw_body: bytes | None = None
    """Send these bytes as the 200 body instead of a completion (malformed-response tests)."""

    @staticmethod
    def calls(*calls: tuple[str, str], content: str | None = "", **kw: Any) -> Reply:
        """A reply made of tool calls given as (name, arguments string)."""
        return Reply(
            content=content,
            tool_calls=tuple(ScriptedToolCall(name, args) for name, args in calls),
            **kw,
        )

    @staticmethod
    def user_turn(
        query: str, *, completed: bool = False, reason: str = "scripted", delay_s: float = 0.0
    ) -> Reply:
        """A user-simulator answer: the JSON object the simulator's contract asks for."""
        body = {"completed": completed, "query": query, "reason": reason}
        return Reply(content=json.dumps(body), delay_s=delay_s)


@dataclass(frozen=True)
class Error:
    """An HTTP error answer in OpenAI's error shape."""

    status: int
    message: str = "scripted error"
    retry_after: str | float | None = None
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    json: dict[str, Any] | None = None

    @property
    def model(self) -> str:
        return str((self.json or {}).get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.json or {}).get("messages", []))

    @property
    def tools(self) -> list[dict[str, Any]] | None:
        return (self.json or {}).get("tools")

    @property
    def response_format(self) -> dict[str, Any] | None:
        return (self.json or {}).get("response_format")


Handler = Callable[[RecordedRequest], "Reply | Error"]


@dataclass
class _State:
    reasoning_styles: dict[str, ReasoningStyle]
    api_key: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    queues: dict[str, deque[Reply | Error]] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    call_counter: int = 0
    completion_counter: int = 0


class ScriptedOpenAIServer:
    """Start with `start()` or as a context manager; `base_url` ends in /v1.

    Args:
        reasoning_styles: per model, where reasoning goes: "field" (`reasoning_content`, the
            default) or "inline" (``<think>...</think>`` before the content).
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get 401.
    """

    def __init__(
        self,
        *,
        reasoning_styles: dict[str, ReasoningStyle] | None = None,
        api_key: str | None = None,
    ) -> None:
        self._state = _State(reasoning_styles=dict(reasoning_styles or {}), api_key=api_key)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ScriptedOpenAIServer:
        state = self._state

        class _Handler(_RequestHandler):
            server_state = state

        httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ScriptedOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------------

    def script(self, model: str, *answers: Reply | Error) -> None:
        """Queue answers for `model`, played in order."""
        with self._state.lock:
            self._state.queues.setdefault(model, deque()).extend(answers)

    def handle(self, model: str, handler: Handler) -> None:
        """Answer requests for `model` (once its script is empty) with `handler(request)`."""
        with self._state.lock:
            self._state.handlers[model] = handler

    def set_reasoning_style(self, model: str, style: ReasoningStyle) -> None:
        with self._state.lock:
            self._state.reasoning_styles[model] = style

    # -- inspection --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    def remaining(self, model: str) -> int:
        """How many scripted answers for `model` were not played yet."""
        with self._state.lock:
            return len(self._state.queues.get(model, ()))

    @property
    def unexpected(self) -> list[str]:
        with self._state.lock:
            return list(self._state.unexpected)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out closes its socket before the delayed answer is written;
        # that broken pipe is the expected outcome of a timeout test, not a server failure.
        exc = sys.exc_info()[1]
        if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: _State
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            state = self.server_state
            with state.lock:
                names = sorted(set(state.queues) | set(state.handlers))
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": n, "object": "model", "owned_by": "ise-es-tests"} for n in names
                    ],
                },
            )
            return
        self._send_error(404, f"no route for GET {self.path}", "NotFoundError")

    def do_POST(self) -> None:
        state = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        recorded = RecordedRequest(
            method="POST",
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=time.monotonic(),
        )
        try:
            parsed = json.loads(body)
            recorded.json = parsed if isinstance(parsed, dict) else None
        except ValueError:
            recorded.json = None
        with state.lock:
            state.requests.append(recorded)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_error(404, f"no route for POST {self.path}", "NotFoundError")
            return
        if recorded.json is None:
            self._send_error(400, "request body is not a JSON object", "BadRequestError")
            return
        if state.api_key is not None and recorded.headers.get("authorization") != (
            f"Bearer {state.api_key}"
        ):
            self._send_error(401, "invalid API key", "AuthenticationError")
            return
        model = recorded.model
        with state.lock:
            queue = state.queues.get(model)
            answer: Reply | Error | None = queue.popleft() if queue else None
            handler = state.handlers.get(model)
            known = model in state.queues or handler is not None
        if answer is None and handler is not None:
            try:
                answer = handler(recorded)
            except Exception as e:  # a bug in a test's handler must surface, not hang the test
                with state.lock:
                    state.unexpected.append(f"handler for {model!r} raised {e!r}")
                self._send_error(400, f"handler raised {e!r}", "BadRequestError")
                return
        if answer is None:
            status = 400 if known else 404
            why = (
                f"script for model {model!r} is exhausted" if known else f"unknown model {model!r}"
            )
            with state.lock:
                state.unexpected.append(why)
            self._send_error(status, f"scripted server: {why}", "BadRequestError")
            return
        if answer.delay_s:
            time.sleep(answer.delay_s)
        if isinstance(answer, Error):
            headers = list(answer.headers)
            if answer.retry_after is not None:
                headers.append(("Retry-After", str(answer.retry_after)))
            self._send_error(answer.status, answer.message, "ScriptedError", headers)
            return
        if answer.raw_body is not None:
            self._send_bytes(200, answer.raw_body, [])
            return
        self._send_json(200, self._completion(recorded, answer))

    def _completion(self, request: RecordedRequest, reply: Reply) -> dict[str, Any]:
        state = self.server_state
        model = request.model
        style = reply.reasoning_style or state.reasoning_styles.get(model, "field")
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.reasoning is not None:
            if style == "inline":
                message["content"] = (
                    f"<think>\n{reply.reasoning}\n</think>\n\n{reply.content or ''}"
                )
            else:
                message["reasoning_content"] = reply.reasoning
        calls = []
        with state.lock:
            for call in reply.tool_calls:
                state.call_counter += 1
                calls.append(
                    {
                        "id": call.id or f"chatcmpl-tool-{state.call_counter:016x}",
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                )
            state.completion_counter += 1
            completion_id = f"chatcmpl-{state.completion_counter:08x}"
        message["tool_calls"] = calls
        if reply.usage is not None:
            prompt_tokens, completion_tokens = reply.usage
        else:
            # Deterministic stand-in for a tokenizer: about four characters per token.
            prompt_tokens = 1 + len(json.dumps(request.messages)) // 4
            produced = (message["content"] or "") + (reply.reasoning or "")
            produced += "".join(c.arguments for c in reply.tool_calls)
            completion_tokens = 1 + len(produced) // 4
        finish = reply.finish_reason or ("tool_calls" if calls else "stop")
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": finish,
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": None,
            },
        }

    def _send_error(
        self,
        status: int,
        message: str,
        kind: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
        self._send_bytes(status, json.dumps(body).encode(), headers or [])

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), [])

    def _send_bytes(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


DONE_MARKER = "ALL-DONE-7f3a"
"""What the scripted agent says when it has finished; the scripted user then completes."""


def serve_conversations(
    server: ScriptedOpenAIServer,
    *,
    agent_model: str,
    user_model: str,
    command: str = "echo ok",
    latency_s: float = 0.0,
    failing: Callable[[], Error | None] | None = None,
) -> None:
    """Answer any number of concurrent sessions by looking at each conversation: the user asks
    once, the agent runs `command` with exec, then replies with DONE_MARKER, and the user
    completes. `latency_s` delays every answer (the fleet benchmarks' model latency);
    `failing()` may return an Error to send instead (an endpoint that is down)."""

    def user(request: RecordedRequest) -> Reply | Error:
        error = failing() if failing is not None else None
        if error is not None:
            return error
        done = DONE_MARKER in json.dumps(request.messages)
        if done:
            return Reply.user_turn("Thanks, that is all.", completed=True, delay_s=latency_s)
        return Reply.user_turn(f"Please run {command} for me.", delay_s=latency_s)

    def agent(request: RecordedRequest) -> Reply | Error:
        error = failing() if failing is not None else None
        if error is not None:
            return error
        if request.messages and request.messages[-1].get("role") == "tool":
            return Reply(content=f"Done. {DONE_MARKER}", delay_s=latency_s)
        return Reply.calls(("exec", json.dumps({"command": command})), delay_s=latency_s)

    server.handle(user_model, user)
    server.handle(agent_model, agent)
