"""LLM access for every role: the client protocol, role settings and the OpenAI-protocol client.

from ise_es.llm import OpenAIChatClient, RoleConfig

config = RoleConfig(role="agent", model="Qwen/Qwen3-8B", base_url="http://127.0.0.1:8000/v1")
with OpenAIChatClient(config, environ=os.environ) as client:
    result = client.complete([{"role": "user", "content": "hi"}], tools=schemas)
    events = [result.model_call()]            # + store result.request_body as a blob
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ise_es.llm.base import (
        ROLES,
        ChatClient,
        ChatResult,
        JsonMode,
        Message,
        RequestInfo,
        RetryRecord,
        RoleConfig,
        canonical_request,
        encode_request,
        failed_model_call,
        split_inline_reasoning,
    )
    from ise_es.llm.openai_client import OpenAIChatClient, backoff_delay, parse_retry_after

_BASE = {
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
}
_CLIENT = {"OpenAIChatClient", "backoff_delay", "parse_retry_after"}


def __getattr__(name: str) -> object:
    # Every name loads on first use. The HTTP client imports `openai` (~0.8 s): only code that
    # talks to a model pays for it. And `ise_es.llm.roles`, which every command module reads
    # its option defaults from (so `--help` imports it), must not load msgspec and the event
    # types through this package.
    if name in _BASE or name in _CLIENT:
        module = importlib.import_module(
            "ise_es.llm.base" if name in _BASE else "ise_es.llm.openai_client"
        )
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ROLES",
    "ChatClient",
    "ChatResult",
    "JsonMode",
    "Message",
    "OpenAIChatClient",
    "RequestInfo",
    "RetryRecord",
    "RoleConfig",
    "backoff_delay",
    "canonical_request",
    "encode_request",
    "failed_model_call",
    "parse_retry_after",
    "split_inline_reasoning",
]
