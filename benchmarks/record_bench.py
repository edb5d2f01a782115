"""Recording overhead: the shipped scenarios recorded into a store, against running the same
tool calls in the same kind of sandbox with nothing recorded (the floor), in one run.

    .venv/bin/python benchmarks/record_bench.py [--repeat 3] [--batch 16]

Prints: 1-worker recording time vs the floor (target overhead <= 30%), 4 workers vs 1 worker
on a batch of scripted sessions (target <= 0.6x), and the event append latency p50/p99 the
recorder saw. SQLite store (WAL, synchronous=FULL), local sandbox.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from ise_es.events import Event
from ise_es.fleet.inputs import RecordInput, build_specs
from ise_es.fleet.record import record_specs
from ise_es.fleet.spec import WorkSpec
from ise_es.fleet.worker import WorkerOptions
from ise_es.sandbox import open_sandbox, pinned_environment
from ise_es.simulate.scenario import Scenario, ScriptedAgentClient, load_scenarios
from ise_es.store import migrate
from ise_es.store.sql import open_store
from ise_es.tools import FixtureWebGateway, SessionNamer, ToolRunner

SCENARIOS = Path(__file__).resolve().parents[1] / "ise_es" / "data" / "scenarios"


class MemoryBlobs:
    """The floor keeps blobs in a dict: no store at all."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.data[digest] = data
        return digest


def floor_run(scenarios: list[Scenario], seeds: dict[str, int]) -> float:
    """The same tool calls in a fresh sandbox per scenario, events dropped."""
    started = time.perf_counter()
    web = FixtureWebGateway()
    try:
        for scenario in scenarios:
            blobs = MemoryBlobs()
            drop: list[Event] = []
            with open_sandbox(
                "local", scenario.template, blobs=blobs, environment=pinned_environment()
            ) as sandbox:
                runner = ToolRunner(
                    sandbox, blobs, web, drop.append, name_factory=SessionNamer(seeds[scenario.id])
                )
                agent = ScriptedAgentClient(scenario)
                index = 0
                try:
                    for t, turn in enumerate(scenario.turns):
                        for s, _ in enumerate(turn.agent):
                            result = agent.complete([])
                            for call in result.tool_calls:
                                runner.run(call, turn=t + 1, step=s, index=index)
                                index += 1
                finally:
                    runner.close()
    finally:
        web.close()
    return time.perf_counter() - started


def record_run(specs: list[WorkSpec], workers: int) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        with open_store(url) as store:
            started = time.perf_counter()
            run = record_specs(
                store, specs, options=WorkerOptions(concurrency=workers, poll_seconds=0.05)
            )
            seconds = time.perf_counter() - started
        assert run.report is not None
        assert set(run.report.statuses) == {"completed"}, run.report.statuses
    return seconds, list(run.report.append_latencies)


def items_for(copies: int) -> list[WorkSpec]:
    """The shipped scenarios `copies` times, each copy queued under its own id."""
    base = build_specs(RecordInput(scenario_path=SCENARIOS), {})
    return [
        msgspec.structs.replace(spec, source_id=f"{spec.source_id}#{n}")
        for n in range(copies)
        for spec in base
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--copies",
        type=int,
        default=3,
        help="Record the scenarios this many times per measurement (fixed costs amortise).",
    )
    args = parser.parse_args()
    import zlib

    scenarios = [s for _, s in load_scenarios(SCENARIOS)]
    seeds = {s.id: zlib.crc32(s.id.encode()) for s in scenarios}
    base_items = items_for(args.copies)
    floors, records, latencies = [], [], []
    floor_run(scenarios, seeds)  # warm-up: imports, page cache, the docker-free sandbox path
    record_run(base_items[: len(scenarios)], 1)
    for _ in range(args.repeat):
        floors.append(sum(floor_run(scenarios, seeds) for _ in range(args.copies)))
        seconds, lat = record_run(base_items, 1)
        records.append(seconds)
        latencies.extend(lat)
    floor, rec = statistics.median(floors), statistics.median(records)
    batch = items_for((args.batch + len(scenarios) - 1) // len(scenarios))[: args.batch]
    one, _ = record_run(batch, 1)
    four, lat4 = record_run(batch, 4)
    latencies.extend(lat4)
    latencies.sort()
    print(
        f"{len(scenarios)} scenarios x {args.copies}, local sandbox, "
        "SQLite store (WAL, synchronous=FULL)"
    )
    print(f"floor (same tool calls, nothing recorded)  {floor:7.2f} s  (median of {args.repeat})")
    print(
        f"recorded, 1 worker                         {rec:7.2f} s  overhead "
        f"{(rec / floor - 1) * 100:+.0f}%  (target <= +30%)"
    )
    print(f"batch of {len(batch)} sessions, 1 worker              {one:7.2f} s")
    print(
        f"batch of {len(batch)} sessions, 4 workers             {four:7.2f} s  "
        f"ratio {four / one:.2f}x  (target <= 0.6x)"
    )
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"event append latency seen by the recorder: p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms ({len(latencies)} appends)"
    )


if __name__ == "__main__":
    main()
