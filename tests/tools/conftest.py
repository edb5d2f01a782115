"""Fixtures for the tool tests: a real sandbox per backend, the real store as blob sink, the
fixture web, and a `call` helper that runs one tool call through the ToolRunner."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from ise_es.events import Event, OutputChunk, ToolCall, ToolCallFinished
from ise_es.sandbox import Sandbox, open_sandbox
from ise_es.store.sql import SqlEventStore
from ise_es.tools import FixtureWebGateway, ToolRunner, ToolSettings
from ise_es.tools.web import WebGateway

BACKENDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sandbox(
    request: pytest.FixtureRequest, backend: str, blobs: SqlEventStore
) -> Iterator[Sandbox]:
    """A fresh sandbox from the `notes` template (MEMORY.md, memory/, a few notes)."""
    extra: dict[str, Any] = {}
    if backend == "docker":
        extra["client"] = request.getfixturevalue("docker_client")
    sb = open_sandbox(backend, "notes", blobs=blobs, **extra)
    yield sb
    sb.close()


@pytest.fixture(scope="session")
def fixture_web() -> Iterator[FixtureWebGateway]:
    with FixtureWebGateway() as gateway:
        yield gateway


@dataclass
class Harness:
    """A ToolRunner plus the events it emitted, and a one-line way to make a call."""

    runner: ToolRunner
    events: list[Event] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)

    def call(self, tool: str, raw: str | None = None, /, **args: Any) -> ToolCallFinished:
        """Run `tool` with `args` (or with the raw arguments string `raw`)."""
        n = next(self._ids)
        arguments = raw if raw is not None else json.dumps(args)
        return self.runner.run(
            ToolCall(id=f"call_{n}", name=tool, arguments=arguments), turn=1, step=n, index=n
        )

    def of_call(self, call_id: str) -> list[Event]:
        return [e for e in self.events if getattr(e, "call_id", None) == call_id]

    def chunks(self, call_id: str) -> list[OutputChunk]:
        return [e for e in self.of_call(call_id) if isinstance(e, OutputChunk)]


MakeHarness = Callable[..., Harness]


@pytest.fixture
def make_harness(
    sandbox: Sandbox, blobs: SqlEventStore, fixture_web: FixtureWebGateway
) -> Iterator[MakeHarness]:
    made: list[Harness] = []

    def make(
        *,
        gateway: WebGateway | None = None,
        settings: ToolSettings | None = None,
        use_fixture_web: bool = True,
    ) -> Harness:
        events: list[Event] = []
        runner = ToolRunner(
            sandbox,
            blobs,
            gateway if gateway is not None else (fixture_web if use_fixture_web else None),
            events.append,
            settings=settings,
        )
        harness = Harness(runner, events)
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.runner.close()


@pytest.fixture
def harness(make_harness: MakeHarness) -> Harness:
    return make_harness()
