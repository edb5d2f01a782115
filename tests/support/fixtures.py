"""pytest fixtures for LLM tests: the scripted OpenAI-compatible server and a dead endpoint.

Register with ``pytest_plugins = ["tests.support.fixtures"]`` in the root conftest, or import
the fixtures into a folder's conftest.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.openai_server import ScriptedOpenAIServer

FIELD_REASONING_MODEL = "reasoner-field"
"""Served with reasoning in `reasoning_content` (vLLM with a reasoning parser)."""
INLINE_REASONING_MODEL = "reasoner-inline"
"""Served with reasoning inline as <think>...</think> (no reasoning parser)."""


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    """A started scripted server; models FIELD_REASONING_MODEL and INLINE_REASONING_MODEL
    differ in where they put reasoning, any other model name defaults to the field."""
    with ScriptedOpenAIServer(
        reasoning_styles={FIELD_REASONING_MODEL: "field", INLINE_REASONING_MODEL: "inline"}
    ) as server:
        yield server


@pytest.fixture
def refused_base_url() -> str:
    """An endpoint on 127.0.0.1 where nothing listens, so connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port was free a moment ago and nobody is listening: connect() gets ECONNREFUSED.
    return f"http://127.0.0.1:{port}/v1"
