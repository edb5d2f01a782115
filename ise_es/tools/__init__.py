"""The agent's tools: OpenAI function schemas plus executors that run inside a Sandbox.

Entry points: `default_registry()` (the schemas the agent sees), `ToolRunner` (runs one
`ToolCall`, streaming events), and the web gateways (`FixtureWebGateway`, `RecordedWebGateway`;
the live one is `ise_es.web.LiveWebGateway`).
"""

from __future__ import annotations

from ise_es.tools.base import Tool, ToolOutcome, ToolRegistry, ToolSettings
from ise_es.tools.catalog import TOOL_NAMES, default_registry
from ise_es.tools.names import SessionNamer
from ise_es.tools.runner import ToolRunner
from ise_es.tools.web import (
    SEARCH_ENDPOINT,
    FixtureWebGateway,
    RecordedWebGateway,
    WebGateway,
    WebResponse,
)

__all__ = [
    "SEARCH_ENDPOINT",
    "TOOL_NAMES",
    "FixtureWebGateway",
    "RecordedWebGateway",
    "SessionNamer",
    "Tool",
    "ToolOutcome",
    "ToolRegistry",
    "ToolRunner",
    "ToolSettings",
    "WebGateway",
    "WebResponse",
    "default_registry",
]
