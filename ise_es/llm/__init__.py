"""LLM access for every role: the client protocol, role settings and the OpenAI-protocol client.

from ise_es.llm import OpenAIChatClient, RoleConfig

config = RoleConfig(role="agent", model="Qwen/Qwen3-8B", base_url="http://127.0.0.1:8000/v1")
with OpenAIChatClient(config, environ=os.environ) as client:
    result = client.complete([{"role": "user", "content": "hi"}], tools=schemas)
    events = [result.model_call()]            # + store result.request_body as a blob
"""

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from ise_es.llm.openai_client import OpenAIChatClient, backoff_delay, parse_retry_after

_LAZY = {"OpenAIChatClient", "backoff_delay", "parse_retry_after"}


def __getattr__(name: str) -> object:
    # The HTTP client imports `openai` (~0.8 s): only code that talks to a model pays for it,
    # not every command that merely reads role settings (ise_es.llm.roles).
    if name in _LAZY:
        from ise_es.llm import openai_client

        return getattr(openai_client, name)
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
