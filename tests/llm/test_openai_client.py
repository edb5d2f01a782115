"""OpenAIChatClient against a real HTTP server on 127.0.0.1 that answers like vLLM."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ise_es.errors import ConfigError, LLMError
from ise_es.events import ModelCall, ToolCall, Usage, encode_checked
from ise_es.llm import (
    ChatResult,
    OpenAIChatClient,
    RequestInfo,
    RoleConfig,
    backoff_delay,
    failed_model_call,
)
from tests.support.fixtures import FIELD_REASONING_MODEL, INLINE_REASONING_MODEL
from tests.support.openai_server import Error, Reply, ScriptedOpenAIServer, ScriptedToolCall

USER = [{"role": "user", "content": "list the files"}]
EXEC_TOOL = {
    "type": "function",
    "function": {
        "name": "exec",
        "description": "Run a shell command",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}


class Sleeps:
    """Stands in for time.sleep: records the waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


MakeClient = Callable[..., OpenAIChatClient]


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(openai_server: ScriptedOpenAIServer, sleeps: Sleeps) -> Iterator[MakeClient]:
    clients: list[OpenAIChatClient] = []

    def make(
        model: str = "m", *, environ: dict[str, str] | None = None, **fields: Any
    ) -> OpenAIChatClient:
        fields.setdefault("base_url", openai_server.base_url)
        fields.setdefault("timeout_s", 5.0)
        config = RoleConfig(role="agent", model=model, **fields)
        client = OpenAIChatClient(config, environ=environ or {}, sleep=sleeps, rng=random.Random(7))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_plain_reply_has_content_usage_and_finish_reason(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", Reply(content="Here they are.", usage=(31, 7)))

    result = make_client("m").complete(USER)

    assert result.content == "Here they are."
    assert result.reasoning is None
    assert result.tool_calls == []
    assert result.finish_reason == "stop"
    assert result.usage == Usage(prompt_tokens=31, completion_tokens=7, total_tokens=38)
    assert result.retries == []
    assert result.latency_ms > 0
    assert result.response_model == "m"
    assert sleeps.waits == []


def test_request_body_is_what_the_server_received(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script("m", Reply(content="ok"))
    client = make_client("m", temperature=0.3, max_tokens=256, extra_body={"top_k": 20})
    response_format = {"type": "json_object"}

    result = client.complete(USER, tools=[EXEC_TOOL], response_format=response_format)

    [received] = openai_server.requests
    assert received.messages == USER
    assert received.tools == [EXEC_TOOL]
    assert received.response_format == response_format
    assert received.json is not None
    assert received.json["temperature"] == 0.3
    assert received.json["max_tokens"] == 256
    assert received.json["top_k"] == 20
    assert json.loads(result.request_body) == received.json
    assert result.request_digest == hashlib.sha256(result.request_body).hexdigest()


def test_request_bytes_are_canonical(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script("m", Reply(content="a"), Reply(content="b"))
    client = make_client("m")
    reordered = [{"content": "list the files", "role": "user"}]

    first = client.complete(USER)
    second = client.complete(reordered)

    assert first.request_body == second.request_body


def test_reasoning_from_reasoning_content_field(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script(FIELD_REASONING_MODEL, Reply(content="Done.", reasoning="ls is enough"))

    result = make_client(FIELD_REASONING_MODEL).complete(USER)

    assert result.reasoning == "ls is enough"
    assert result.content == "Done."
    assert result.response["reasoning_content"] == "ls is enough"


def test_reasoning_from_inline_think_is_stripped_from_content(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script(INLINE_REASONING_MODEL, Reply(content="Done.", reasoning="ls is enough"))

    result = make_client(INLINE_REASONING_MODEL).complete(USER)

    assert result.reasoning == "ls is enough"
    assert result.content == "Done."
    assert "<think>" in result.response["content"]
    assert "reasoning_content" not in result.response


def test_tool_call_arguments_are_kept_byte_for_byte(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    spaced = '{"command":  "ls -la",\n "workdir": "d\\u00e9j\\u00e0"}'
    broken = '{"command": "cat notes.txt'
    openai_server.script(
        "m",
        Reply(
            content=None,
            tool_calls=(
                ScriptedToolCall("exec", spaced, id="call_a"),
                ScriptedToolCall("read", broken, id="call_b"),
            ),
        ),
    )

    result = make_client("m").complete(USER, tools=[EXEC_TOOL])

    assert result.tool_calls == [
        ToolCall(id="call_a", name="exec", arguments=spaced),
        ToolCall(id="call_b", name="read", arguments=broken),
    ]
    assert result.finish_reason == "tool_calls"
    assert result.content == ""


def test_assistant_message_round_trips_tool_calls(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script(
        "m",
        Reply.calls(("exec", '{"command":"ls"}'), reasoning="think"),
        Reply(content="Two files."),
    )
    client = make_client("m")
    first = client.complete(USER, tools=[EXEC_TOOL])
    call = first.tool_calls[0]
    history = [
        *USER,
        first.assistant_message(),
        {"role": "tool", "tool_call_id": call.id, "content": "a.txt\nb.txt"},
    ]

    client.complete(history, tools=[EXEC_TOOL])

    sent = openai_server.requests[1].messages[1]
    assert sent == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": "exec", "arguments": '{"command":"ls"}'},
            }
        ],
    }


def test_429_waits_exactly_retry_after_then_succeeds(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", Error(429, "slow down", retry_after=2.5), Reply(content="ok"))

    result = make_client("m").complete(USER)

    assert result.content == "ok"
    assert sleeps.waits == [2.5]
    assert [(r.status, r.waited_s) for r in result.retries] == [(429, 2.5)]
    assert "slow down" in result.retries[0].error
    assert len(openai_server.requests) == 2


def test_retry_after_is_capped_by_backoff_max(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", Error(429, retry_after=600), Reply(content="ok"))

    make_client("m", backoff_max_s=10.0).complete(USER)

    assert sleeps.waits == [10.0]


def test_500_is_retried_with_jittered_backoff(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", Error(500, "boom"), Reply(content="ok"))

    result = make_client("m", backoff_base_s=2.0).complete(USER)

    config = RoleConfig(role="agent", model="m", backoff_base_s=2.0)
    expected = backoff_delay(0, config, random.Random(7))
    assert sleeps.waits == [expected]
    assert 1.0 <= expected <= 2.0
    assert result.retries[0].status == 500
    assert result.content == "ok"


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    config = RoleConfig(role="agent", model="m", backoff_base_s=1.0, backoff_max_s=5.0)
    rng = random.Random(1)
    waits = [backoff_delay(attempt, config, rng) for attempt in range(6)]

    for attempt, wait in enumerate(waits):
        step = min(5.0, 2.0**attempt)
        assert step / 2 <= wait <= step


def test_connection_refused_raises_llm_error_after_retries(
    refused_base_url: str, make_client: MakeClient, sleeps: Sleeps
) -> None:
    client = make_client("m", base_url=refused_base_url, max_retries=2)

    with pytest.raises(LLMError) as caught:
        client.complete(USER)

    error = caught.value
    assert error.endpoint == refused_base_url
    assert error.status is None
    assert len(error.retries) == 3
    assert all("connection error" in str(r["error"]) for r in error.retries)
    assert len(sleeps.waits) == 2
    assert refused_base_url in str(error)
    assert isinstance(error.call, RequestInfo)


def test_persistent_503_raises_with_last_status_and_every_attempt(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", *[Error(503, "overloaded", retry_after=1)] * 3)

    with pytest.raises(LLMError) as caught:
        make_client("m", max_retries=2).complete(USER)

    error = caught.value
    assert error.status == 503
    assert [r["waited_s"] for r in error.retries] == [1.0, 1.0, 0]
    assert sleeps.waits == [1.0, 1.0]
    assert openai_server.remaining("m") == 0


def test_client_error_is_not_retried(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", Error(400, "context length exceeded"))

    with pytest.raises(LLMError, match="context length exceeded") as caught:
        make_client("m").complete(USER)

    assert caught.value.status == 400
    assert len(openai_server.requests) == 1
    assert sleeps.waits == []


def test_timeout_is_retried(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient, sleeps: Sleeps
) -> None:
    openai_server.script("m", Reply(content="late", delay_s=1.0), Reply(content="on time"))

    result = make_client("m", timeout_s=0.2).complete(USER)

    assert result.content == "on time"
    assert result.retries[0].status is None
    assert "timeout" in result.retries[0].error


def test_malformed_200_body_is_an_llm_error(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script("m", Reply(raw_body=b'{"id": "x", "choices": []}'))

    with pytest.raises(LLMError, match="malformed response") as caught:
        make_client("m").complete(USER)

    assert caught.value.status == 200


def test_api_key_comes_from_the_named_environment_variable(
    make_client: MakeClient,
) -> None:
    with ScriptedOpenAIServer(api_key="s3cret") as server:
        server.script("m", Reply(content="ok"))
        client = make_client(
            "m", base_url=server.base_url, api_key_env="MY_KEY", environ={"MY_KEY": "s3cret"}
        )
        result = client.complete(USER)

    assert result.content == "ok"
    assert b"s3cret" not in result.request_body
    assert "s3cret" not in json.dumps(result.model_call().parameters)


def test_missing_api_key_variable_is_a_config_error(make_client: MakeClient) -> None:
    with pytest.raises(ConfigError, match="MY_KEY"):
        make_client("m", api_key_env="MY_KEY", environ={})


def test_model_call_event_is_well_formed(
    openai_server: ScriptedOpenAIServer, make_client: MakeClient
) -> None:
    openai_server.script(
        "m",
        Error(429, retry_after=0),
        Reply.calls(("exec", '{"command":"ls"}'), reasoning="r", usage=(10, 5)),
    )
    result: ChatResult = make_client("m", temperature=0.0).complete(USER, tools=[EXEC_TOOL])

    event = result.model_call()
    encode_checked(event)

    assert isinstance(event, ModelCall)
    assert event.role == "agent"
    assert event.request_digest == hashlib.sha256(result.request_body).hexdigest()
    assert event.usage.total_tokens == 15
    assert event.finish_reason == "tool_calls"
    assert event.parameters["temperature"] == 0.0
    assert event.retries == [
        {"attempt": 0, "status": 429, "error": event.retries[0]["error"], "waited_s": 0.0}
    ]
    assert event.response["tool_calls"][0]["function"]["arguments"] == '{"command":"ls"}'


def test_failed_model_call_records_the_error(
    refused_base_url: str, make_client: MakeClient
) -> None:
    client = make_client("m", base_url=refused_base_url, max_retries=1)
    with pytest.raises(LLMError) as caught:
        client.complete(USER)

    event = failed_model_call(caught.value)
    encode_checked(event)

    assert event.error is not None and refused_base_url in event.error
    assert event.base_url == refused_base_url
    assert len(event.retries) == 2
    assert isinstance(caught.value.call, RequestInfo)
    assert event.request_digest == caught.value.call.digest


def test_role_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"agent\.toml.*max_retries"):
        RoleConfig.from_mapping(
            {"role": "agent", "model": "m", "max_retries": -1}, source="agent.toml"
        )
    with pytest.raises(ConfigError, match="temprature"):
        RoleConfig.from_mapping({"role": "agent", "model": "m", "temprature": 1})


def test_role_config_model_spec_has_no_key() -> None:
    config = RoleConfig(role="user", model="m", api_key_env="SECRET_VAR", temperature=0.7)

    spec = config.model_spec()

    assert (spec.role, spec.backend, spec.model, spec.temperature) == ("user", "openai", "m", 0.7)
    assert "SECRET_VAR" not in repr(spec)
