"""Replay overhead: a recorded 30-tool-call session of quick commands replayed (read the
session, fresh sandbox, every call through the tool runner, compared field by field, replay
stream appended) against running the same commands directly in a fresh sandbox of the same
backend (the floor), in one run; then `replay --all` throughput with 1 and 2 workers.

    .venv/bin/python benchmarks/replay_bench.py [--segments 9] [--sessions 12]

Target: replay time per step <= 1.2 x the floor. SQLite store (WAL, synchronous=FULL), local
sandbox (bubblewrap over overlayfs), all normalizers on.

The machine is shared (2 cores, other work running), so one floor run and one replay make a
segment, back to back, the order alternating between segments; each segment gives a ratio and
the median ratio is the figure. A burst of load then hits both halves of a segment alike or
spoils one segment, not the verdict (two runs of the old median-of-each design, minutes apart,
gave +52% and +6.5%). The spread of the ratios and the load average are printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ise_es.fleet.inputs import RecordInput, build_specs
from ise_es.fleet.record import record_specs
from ise_es.fleet.worker import WorkerOptions
from ise_es.sandbox import open_sandbox, pinned_environment
from ise_es.store import migrate
from ise_es.store.base import EventStore
from ise_es.store.sql import open_store
from replay.corpus import replay_all
from replay.runner import replay_session

STEPS = 30


def quick_commands() -> list[str]:
    """Thirty quick commands: prints, small file writes (so the diff has work), reads."""
    commands = []
    for i in range(STEPS):
        kind = i % 3
        if kind == 0:
            commands.append(f"echo step {i}")
        elif kind == 1:
            commands.append(f"printf 'line {i}\\n' > f{i}.txt")
        else:
            commands.append(f"cat f{i - 1}.txt && ls | wc -l")
    return commands


def write_scenario(directory: Path, name: str, commands: list[str]) -> None:
    steps = "".join(
        f'      - tool_calls:\n          - exec: {{command: "{c.replace(chr(92), chr(92) * 2)}"}}\n'
        for c in commands
    )
    (directory / f"{name}.yaml").write_text(
        f"intent: {STEPS} quick commands\ntemplate: empty\nturns:\n  - user: go\n    agent:\n"
        f"{steps}      - text: done\ndone: thanks\n"
    )


def record(url: str, scenario_dir: Path) -> None:
    specs = build_specs(
        RecordInput(scenario_path=scenario_dir, max_turns=4, max_steps=STEPS + 5), {}
    )
    with open_store(url) as store:
        run = record_specs(store, specs, options=WorkerOptions(concurrency=2, poll_seconds=0.05))
    assert run.report is not None and set(run.report.statuses) == {"completed"}, run.report


def floor_run(commands: list[str]) -> float:
    """Fresh sandbox, the same commands through Sandbox.exec, nothing compared or stored."""
    started = time.perf_counter()
    with open_sandbox("local", "empty", blobs=None, environment=pinned_environment()) as sandbox:
        for command in commands:
            result = sandbox.exec(command)
            assert result.exit_code == 0, (command, result)
    return time.perf_counter() - started


def replay_run(store: EventStore, session: str) -> float:
    started = time.perf_counter()
    report = replay_session(store, session)
    elapsed = time.perf_counter() - started
    assert report.status == "reproduced" and len(report.steps) == STEPS, report.counts
    return elapsed


def segments(
    store: EventStore, session: str, commands: list[str], count: int
) -> list[tuple[float, float]]:
    """`count` (floor, replay) pairs, each pair run back to back, alternating which goes first
    so neither always inherits the other's warm caches or its load burst."""
    pairs = []
    for i in range(count):
        if i % 2 == 0:
            floor = floor_run(commands)
            rep = replay_run(store, session)
        else:
            rep = replay_run(store, session)
            floor = floor_run(commands)
        pairs.append((floor, rep))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--segments", type=int, default=9, help="(floor, replay) pairs; the median ratio counts"
    )
    parser.add_argument("--sessions", type=int, default=12, help="corpus size for --all")
    args = parser.parse_args()
    commands = quick_commands()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        one = root / "one"
        one.mkdir()
        write_scenario(one, "quick", commands)
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        record(url, one)
        store = open_store(url)
        (session,) = [s.stream_id for s in store.streams("session-")]
        floor_run(commands)  # warm the page cache and the template digest memo
        replay_run(store, session)
        load_start = os.getloadavg()[0]
        pairs = segments(store, session, commands, args.segments)
        load_end = os.getloadavg()[0]
        ratios = sorted(rep / floor for floor, rep in pairs)
        ratio = statistics.median(ratios)
        floor = statistics.median(f for f, _ in pairs)
        rep = statistics.median(r for _, r in pairs)

        many = root / "many"
        many.mkdir()
        for i in range(args.sessions):
            write_scenario(many, f"quick-{i:02d}", commands[: 10 + i % 3 * 5])
        corpus_url = f"sqlite:///{tmp}/corpus.db"
        migrate.upgrade(corpus_url)
        record(corpus_url, many)
        corpus_store = open_store(corpus_url)
        throughput = {}
        for workers in (1, 2):
            started = time.perf_counter()
            corpus = replay_all(corpus_store, workers=workers)
            seconds = time.perf_counter() - started
            assert corpus.outcomes()["reproducible"] == args.sessions, corpus.summary()
            steps = sum(len(r.steps) for r in corpus.reports)
            throughput[workers] = (seconds, steps)

    print("local sandbox, SQLite store (WAL, synchronous=FULL), all normalizers on")
    print(f"load average {load_start:.2f} at start, {load_end:.2f} after the segments (2 cores)")
    print(f"{STEPS}-call session, {args.segments} interleaved (floor, replay) segments, medians:")
    print(
        f"  floor (fresh sandbox + the {STEPS} commands via Sandbox.exec) {floor:6.3f} s  "
        f"{1000 * floor / STEPS:6.1f} ms/step"
    )
    print(
        f"  replay (read, sandbox, tool runner, diff, compare, append)  {rep:6.3f} s  "
        f"{1000 * rep / STEPS:6.1f} ms/step"
    )
    verdict = "ok" if ratio <= 1.2 else "ABOVE target"
    print(
        f"  overhead, median of the per-segment ratios  {100 * (ratio - 1):+.1f}%  "
        f"(segments from {100 * (ratios[0] - 1):+.1f}% to {100 * (ratios[-1] - 1):+.1f}%; "
        f"target <= +20%: {verdict})"
    )
    s1, n1 = throughput[1]
    s2, n2 = throughput[2]
    print(f"replay --all over {args.sessions} sessions ({n1} steps):")
    print(f"  1 worker   {s1:6.2f} s  {args.sessions / s1:5.2f} sessions/s  {n1 / s1:6.1f} steps/s")
    print(
        f"  2 workers  {s2:6.2f} s  {args.sessions / s2:5.2f} sessions/s  {n2 / s2:6.1f} steps/s"
        f"  ({s1 / s2:.2f}x)"
    )


if __name__ == "__main__":
    main()
