"""A ModelCall and its request blob go through the real store and come back intact."""

from __future__ import annotations

import json
import random

import pytest

from ise_es.errors import LLMError
from ise_es.llm import OpenAIChatClient, RoleConfig, failed_model_call
from ise_es.store.sql import SqlEventStore
from tests.support.openai_server import Reply, ScriptedOpenAIServer

USER = [{"role": "user", "content": "hi"}]


def test_model_call_and_request_blob_round_trip(
    openai_server: ScriptedOpenAIServer, sqlite_store: SqlEventStore
) -> None:
    openai_server.script("m", Reply(content="hello", reasoning="greet back"))
    config = RoleConfig(role="agent", model="m", base_url=openai_server.base_url)
    with OpenAIChatClient(config, environ={}, rng=random.Random(0)) as client:
        result = client.complete(USER)
    sqlite_store.append("session-llm", [result.model_call()], 0, blobs=[result.request_body])
    [stored] = sqlite_store.read_stream("session-llm")
    event = stored.data
    assert event == result.model_call()
    assert event.request_digest is not None
    assert json.loads(sqlite_store.get_blob(event.request_digest))["messages"] == USER


def test_failed_call_is_recordable(refused_base_url: str, sqlite_store: SqlEventStore) -> None:
    config = RoleConfig(role="user", model="m", base_url=refused_base_url, max_retries=0)
    with (
        OpenAIChatClient(config, environ={}, sleep=lambda s: None) as client,
        pytest.raises(LLMError) as caught,
    ):
        client.complete(USER)
    sqlite_store.append("session-llm", [failed_model_call(caught.value)], 0)
    [stored] = sqlite_store.read_stream("session-llm")
    assert stored.data == failed_model_call(caught.value)
