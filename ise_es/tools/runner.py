"""The tool runner: one model tool call in, events out, as they happen.

For each call it emits ToolCallStarted, then whatever the tool streams (OutputChunk,
HttpExchange), then ToolCallFinished (whose `result_text` is exactly what the agent sees), then
FsDiff when the workspace changed. Bad calls (unknown tool, invalid JSON, wrong or missing
arguments) and tool failures become error results recorded like any other, never exceptions.
Only a broken sandbox, or a bug, raises, and even then a ToolCallFinished describing it is
emitted first so the stream stays well-formed.

The runner knows nothing about the store or the LLM: the recorder passes an `emit` that appends
events, the replayer passes a `RecordedWebGateway` and its own `emit`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ise_es.errors import SandboxError, ToolError
from ise_es.events import FsDiff, ToolCall, ToolCallFinished, ToolCallStarted
from ise_es.sandbox.base import Sandbox, Snapshot
from ise_es.sandbox.capture import BlobSink
from ise_es.tools.base import (
    Emit,
    ToolContext,
    ToolOutcome,
    ToolRegistry,
    ToolSettings,
    error_outcome,
)
from ise_es.tools.names import SessionNamer
from ise_es.tools.process import ProcessManager
from ise_es.tools.schema import ArgumentError, parse_arguments
from ise_es.tools.web import WebGateway

__all__ = ["ToolRunner"]


class ToolRunner:
    """Runs tool calls in one sandbox for one agent session. Close it to end its background
    processes."""

    def __init__(
        self,
        sandbox: Sandbox,
        blobs: BlobSink,
        gateway: WebGateway | None,
        emit: Emit,
        *,
        registry: ToolRegistry | None = None,
        settings: ToolSettings | None = None,
        name_factory: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from ise_es.tools.catalog import default_registry

        self.sandbox = sandbox
        self.blobs = blobs
        self.gateway = gateway
        self.emit = emit
        self.registry = registry if registry is not None else default_registry()
        self.settings = settings or ToolSettings()
        self.clock = clock
        self.processes = ProcessManager(
            sandbox,
            name_factory or SessionNamer(0),
            clock,
            log_cap=self.settings.process_log_bytes,
        )

    def schemas(self) -> list[dict[str, Any]]:
        return self.registry.schemas()

    def run(self, call: ToolCall, *, turn: int, step: int, index: int) -> ToolCallFinished:
        """Execute one tool call, emitting its events; returns its ToolCallFinished.

        Raises:
            SandboxError: the sandbox is unusable (after a ToolCallFinished saying so).
        """
        self.emit(
            ToolCallStarted(
                call_id=call.id,
                tool=call.name,
                arguments=call.arguments,
                turn=turn,
                step=step,
                index=index,
            )
        )
        started = self.clock()
        mark: Snapshot | None = None
        try:
            tool = self.registry.get(call.name)
            if tool is None:
                outcome = error_outcome(
                    call.name,
                    f"Unknown tool {call.name!r}. Available tools: "
                    f"{', '.join(self.registry.names())}.",
                )
            else:
                try:
                    args = parse_arguments(call.arguments, tool.parameters)
                except ArgumentError as e:
                    outcome = error_outcome(call.name, f"Invalid arguments for {call.name}: {e}")
                else:
                    if tool.changes_files:
                        mark = self.sandbox.snapshot()
                    outcome = self._execute(call, tool.execute, args)
        except BaseException as e:
            # The sandbox died or a bug surfaced: record that the call ended, then let it rise.
            message = f"{call.name} failed: {type(e).__name__}: {e}"
            self._finish(call, error_outcome(call.name, message), started)
            raise
        finished = self._finish(call, outcome, started)
        if mark is not None:
            changes = self.sandbox.diff(mark)
            if changes:
                self.emit(FsDiff(call_id=call.id, changes=changes))
        return finished

    def _execute(
        self,
        call: ToolCall,
        execute: Callable[[ToolContext, dict[str, object]], ToolOutcome],
        args: dict[str, object],
    ) -> ToolOutcome:
        ctx = ToolContext(
            sandbox=self.sandbox,
            blobs=self.blobs,
            gateway=self.gateway,
            processes=self.processes,
            settings=self.settings,
            call_id=call.id,
            emit=self.emit,
            clock=self.clock,
        )
        try:
            return execute(ctx, args)
        except ArgumentError as e:
            return error_outcome(call.name, f"Invalid arguments for {call.name}: {e}")
        except SandboxError:
            raise
        except ToolError as e:
            return error_outcome(call.name, str(e))
        except OSError as e:
            return error_outcome(call.name, f"{call.name} failed: {e.strerror or e}")

    def _finish(self, call: ToolCall, outcome: ToolOutcome, started: float) -> ToolCallFinished:
        finished = ToolCallFinished(
            call_id=call.id,
            tool=call.name,
            result_text=outcome.text,
            is_error=outcome.is_error,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            timed_out=outcome.timed_out,
            duration_ms=(self.clock() - started) * 1000.0,
            error=outcome.error,
            stdout_digest=outcome.stdout_digest,
            stdout_size=outcome.stdout_size,
            stderr_digest=outcome.stderr_digest,
            stderr_size=outcome.stderr_size,
            truncated=outcome.truncated,
            details=outcome.details,
        )
        self.emit(finished)
        return finished

    def close(self) -> None:
        """Kill every background process this runner started; idempotent."""
        self.processes.close()

    def __enter__(self) -> ToolRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
