"""What a tool is: an OpenAI function schema plus an executor, and the registry that holds them.

An executor gets a `ToolContext` (the sandbox, the blob sink, the web gateway, the process
table, a way to emit events) and the validated arguments, and returns a `ToolOutcome` whose
`text` is exactly what the agent will see. Failures the agent should hear about are raised as
`ToolError` (or returned with `is_error`); the runner turns either into a recorded result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ise_es.events import Event
from ise_es.sandbox.base import Limits, Sandbox
from ise_es.sandbox.capture import BlobSink

if TYPE_CHECKING:
    from ise_es.tools.process import ProcessManager
    from ise_es.tools.web import WebGateway

__all__ = [
    "Emit",
    "Tool",
    "ToolContext",
    "ToolOutcome",
    "ToolRegistry",
    "ToolSettings",
    "error_outcome",
]

Emit = Callable[[Event], None]


@dataclass(frozen=True)
class ToolSettings:
    """Knobs of the tool layer (the sandbox's own limits live in `Limits`)."""

    output_head_bytes: int = Limits().output_head_bytes
    """Per stream, output past this is not emitted as OutputChunk events (blobs keep it)."""
    result_head_bytes: int = 48 * 1024
    """The agent sees at most this much of a command's output from the start..."""
    result_tail_bytes: int = 16 * 1024
    """...plus this much from the end, with a note on what was left out between."""
    crontab_path: str = ".crontab"
    fetch_max_bytes: int = 4 << 20
    fetch_default_chars: int = 50_000
    max_redirects: int = 5
    process_log_bytes: int = 1 << 20
    """Per background session, output kept in memory for poll/log (oldest dropped first)."""
    process_blob_cap: int = 64 << 20
    memory_max_results: int = 6


@dataclass(frozen=True)
class ToolOutcome:
    """How one tool call ended, from the executor's point of view."""

    text: str
    is_error: bool = False
    error: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    stdout_digest: str | None = None
    stdout_size: int = 0
    stderr_digest: str | None = None
    stderr_size: int = 0
    truncated: bool = False
    details: dict[str, Any] = field(default_factory=dict)


def error_outcome(tool: str, message: str, **details: Any) -> ToolOutcome:
    """A failed call: the agent sees `message`; details follow the reference's error shape."""
    return ToolOutcome(
        text=message,
        is_error=True,
        error=message,
        details={"status": "error", "tool": tool, "error": message, **details},
    )


@dataclass
class ToolContext:
    """Everything an executor may use for one call."""

    sandbox: Sandbox
    blobs: BlobSink
    gateway: WebGateway | None
    processes: ProcessManager
    settings: ToolSettings
    call_id: str
    emit: Emit
    clock: Callable[[], float]


Executor = Callable[[ToolContext, dict[str, Any]], ToolOutcome]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON Schema object (type object, properties, required, additionalProperties false)."""
    execute: Executor
    changes_files: bool = True
    """False for tools that never touch the workspace (no snapshot/diff around them)."""

    def schema(self) -> dict[str, Any]:
        """The OpenAI function-calling schema the agent sees."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ToolRegistry:
    """Tools by name, in registration order (the order the agent sees them)."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is registered twice")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.schema() for tool in self._tools.values()]

    def subset(self, names: Iterable[str]) -> ToolRegistry:
        """A registry with only `names`, keeping this registry's order.

        Raises:
            ValueError: a name is not registered.
        """
        wanted = set(names)
        unknown = wanted - set(self._tools)
        if unknown:
            raise ValueError(f"unknown tools: {', '.join(sorted(unknown))}")
        return ToolRegistry(t for t in self._tools.values() if t.name in wanted)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)
