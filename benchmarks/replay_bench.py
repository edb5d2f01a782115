"""Replay overhead: a recorded 30-tool-call session of quick commands replayed (read the
session, fresh sandbox, every call through the tool runner, compared field by field, replay
stream appended) against running the same commands directly in a fresh sandbox of the same
backend (the floor), in one run; then `replay --all` throughput with 1 and 2 workers.

    .venv/bin/python benchmarks/replay_bench.py [--segments 9] [--sessions 12]
    .venv/bin/python benchmarks/replay_bench.py --growth 96 [--rounds 3]

Target: replay time per step <= 1.2 x the floor. SQLite store (WAL, synchronous=FULL), local
sandbox (bubblewrap over overlayfs), all normalizers on.

The machine is shared (2 cores, other work running), so one floor run and one replay make a
segment, back to back, the order alternating between segments; each segment gives a ratio and
the median ratio is the figure. A burst of load then hits both halves of a segment alike or
spoils one segment, not the verdict (two runs of the old median-of-each design, minutes apart,
gave +52% and +6.5%). The spread of the ratios and the load average are printed beside it,
and the same median for CPU (this process's and its sandboxes'), which a busy machine moves
less than wall time.

--growth N instead records corpora of N/4, N/2 and N sessions of a few tool calls each and
runs `replay --all` (1 worker) over each, beside a floor (every session's commands run
directly in a fresh sandbox), each step in its own process so its CPU (its own and its
sandboxes') is its own. Each round runs every size, the order of the sizes and of floor and
replay alternating between rounds; the medians give ms per session (wall and CPU) per size,
replay over the floor of the same round (the median of the rounds' ratios: load drift hits
both), and the full size's per-session cost over the quarter's: flat (<= x1.25 CPU) means
linear. 96 sessions x 3 rounds take about 3 minutes here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
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
Runs = dict[tuple[int, str], list[dict[str, float]]]
"""--growth's timings: (sessions, "floor" | "replay") -> one {"seconds", "cpu"} per round."""
FLAT = 1.25
"""--growth's verdict: the full corpus's per-session CPU at most this many times the quarter's."""


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


def session_commands(k: int) -> list[str]:
    """--growth's session k: five calls whose diffs add, modify and delete files."""
    return [
        f"echo session {k}",
        f"printf 'line {k}\\n' > a.txt",
        "cat a.txt && ls | wc -l",
        f"mkdir -p d && printf '{k}' > d/b.txt && printf more >> a.txt",
        "rm a.txt && ls",
    ]


def write_scenario(directory: Path, name: str, commands: list[str]) -> None:
    steps = "".join(
        f'      - tool_calls:\n          - exec: {{command: "{c.replace(chr(92), chr(92) * 2)}"}}\n'
        for c in commands
    )
    (directory / f"{name}.yaml").write_text(
        f"intent: {len(commands)} quick commands\ntemplate: empty\nturns:\n  - user: go\n"
        f"    agent:\n{steps}      - text: done\ndone: thanks\n"
    )


def record(url: str, scenario_dir: Path) -> None:
    specs = build_specs(
        RecordInput(scenario_path=scenario_dir, max_turns=4, max_steps=STEPS + 5), {}
    )
    with open_store(url) as store:
        run = record_specs(store, specs, options=WorkerOptions(concurrency=2, poll_seconds=0.05))
    assert run.report is not None and set(run.report.statuses) == {"completed"}, run.report


def floor_run(commands: list[str]) -> tuple[float, float]:
    """Fresh sandbox, the same commands through Sandbox.exec, nothing compared or stored.
    Returns (wall, CPU with the sandboxes') seconds."""
    cpu, started = cpu_seconds()[1], time.perf_counter()
    with open_sandbox("local", "empty", blobs=None, environment=pinned_environment()) as sandbox:
        for command in commands:
            result = sandbox.exec(command)
            assert result.exit_code == 0, (command, result)
    return time.perf_counter() - started, cpu_seconds()[1] - cpu


def replay_run(store: EventStore, session: str) -> tuple[float, float]:
    cpu, started = cpu_seconds()[1], time.perf_counter()
    report = replay_session(store, session)
    elapsed = time.perf_counter() - started, cpu_seconds()[1] - cpu
    assert report.status == "reproduced" and len(report.steps) == STEPS, report.counts
    return elapsed


def segments(
    store: EventStore, session: str, commands: list[str], count: int
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """`count` ((floor wall, CPU), (replay wall, CPU)) pairs, each pair run back to back,
    alternating which goes first so neither always inherits the other's warm caches or its
    load burst."""
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


def overhead(root: Path, count: int) -> None:
    """One 30-call session: floor and replay in `count` interleaved segments, printed."""
    commands = quick_commands()
    one = root / "one"
    one.mkdir()
    write_scenario(one, "quick", commands)
    url = f"sqlite:///{root}/bench.db"
    migrate.upgrade(url)
    record(url, one)
    with open_store(url) as store:
        (session,) = [s.stream_id for s in store.streams("session-")]
        floor_run(commands)  # warm the page cache and the template digest memo
        replay_run(store, session)
        load_start = os.getloadavg()[0]
        pairs = segments(store, session, commands, count)
        load_end = os.getloadavg()[0]
    ratios = sorted(rep[0] / floor[0] for floor, rep in pairs)
    cpu_ratios = sorted(rep[1] / floor[1] for floor, rep in pairs)
    ratio, cpu_ratio = statistics.median(ratios), statistics.median(cpu_ratios)
    floor = statistics.median(f[0] for f, _ in pairs)
    rep = statistics.median(r[0] for _, r in pairs)
    print("local sandbox, SQLite store (WAL, synchronous=FULL), all normalizers on")
    print(f"load average {load_start:.2f} at start, {load_end:.2f} after the segments (2 cores)")
    print(f"{STEPS}-call session, {count} interleaved (floor, replay) segments, medians:")
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
    print(
        f"  CPU overhead (with the sandboxes'), median  {100 * (cpu_ratio - 1):+.1f}%  "
        f"(segments from {100 * (cpu_ratios[0] - 1):+.1f}% to {100 * (cpu_ratios[-1] - 1):+.1f}%)"
    )


def throughput(root: Path, sessions: int) -> None:
    """`replay --all` over `sessions` sessions of 10-20 calls with 1 and 2 workers."""
    commands = quick_commands()
    many = root / "many"
    many.mkdir()
    for i in range(sessions):
        write_scenario(many, f"quick-{i:02d}", commands[: 10 + i % 3 * 5])
    url = f"sqlite:///{root}/corpus.db"
    migrate.upgrade(url)
    record(url, many)
    runs = {}
    with open_store(url) as store:
        for workers in (1, 2):
            started = time.perf_counter()
            corpus = replay_all(store, workers=workers)
            seconds = time.perf_counter() - started
            assert corpus.outcomes()["reproducible"] == sessions, corpus.summary()
            runs[workers] = (seconds, sum(len(r.steps) for r in corpus.reports))
    (s1, n1), (s2, n2) = runs[1], runs[2]
    print(f"replay --all over {sessions} sessions ({n1} steps):")
    print(f"  1 worker   {s1:6.2f} s  {sessions / s1:5.2f} sessions/s  {n1 / s1:6.1f} steps/s")
    print(
        f"  2 workers  {s2:6.2f} s  {sessions / s2:5.2f} sessions/s  {n2 / s2:6.1f} steps/s"
        f"  ({s1 / s2:.2f}x)"
    )


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy of a closed SQLite store (the backup API, WAL included)."""
    target.unlink(missing_ok=True)
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def build_corpora(root: Path, sizes: list[int]) -> dict[int, Path]:
    """One SQLite store per size, each the previous size's copied with the sessions it lacks
    recorded on top, so the largest size is recorded once in all."""
    corpora: dict[int, Path] = {}
    done = 0
    for n in sizes:
        path = root / f"corpus-{n}.db"
        if done:
            copy_db(corpora[done], path)
        else:
            migrate.upgrade(f"sqlite:///{path}")
        scenarios = root / f"scenarios-{n}"
        scenarios.mkdir()
        for k in range(done, n):
            write_scenario(scenarios, f"s-{k:04d}", session_commands(k))
        record(f"sqlite:///{path}", scenarios)
        corpora[n] = path
        done = n
    return corpora


def cpu_seconds() -> tuple[float, float]:
    """This process's own CPU, and that plus its waited-for children's (the sandboxes'): what
    could depend on the corpus (reading it, appending replays) is in the first."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = me.ru_utime + me.ru_stime
    return own, own + kids.ru_utime + kids.ru_stime


def growth_step(step: str, db: str, sessions: int) -> dict[str, float]:
    """In a child process: the floor or `replay --all` over a corpus of `sessions` sessions."""
    (own, cpu), started = cpu_seconds(), time.perf_counter()
    if step == "floor":
        for k in range(sessions):
            floor_run(session_commands(k))
    else:
        with open_store(f"sqlite:///{db}") as store:
            corpus = replay_all(store, workers=1)
        assert corpus.outcomes()["reproducible"] == sessions, corpus.summary()
    seconds = time.perf_counter() - started
    own_after, cpu_after = cpu_seconds()
    return {"seconds": seconds, "cpu": cpu_after - cpu, "own": own_after - own}


def child(step: str, db: Path, sessions: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--growth-step", step, "--db", str(db), "--n", str(sessions)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def growth_rounds(root: Path, corpora: dict[int, Path], rounds: int) -> Runs:
    """Every size in every round (order of sizes and of floor/replay alternating); replay runs
    on a fresh copy of the corpus, so earlier rounds' replay streams do not pile up."""
    sizes = sorted(corpora)
    runs: Runs = {}
    for r in range(rounds):
        for i, n in enumerate(sizes if r % 2 == 0 else sizes[::-1]):
            order = ("floor", "replay") if (r + i) % 2 == 0 else ("replay", "floor")
            for step in order:
                db = corpora[n]
                if step == "replay":
                    db = root / "work.db"
                    copy_db(corpora[n], db)
                load = os.getloadavg()[0]
                result = child(step, db, n)
                runs.setdefault((n, step), []).append(result)
                print(
                    f"  round {r} {n:4d} sessions {step:<6} {result['seconds']:7.2f} s  "
                    f"cpu {result['cpu']:6.2f} s  load {load:.2f}",
                    flush=True,
                )
    return runs


def growth(total: int, rounds: int) -> None:
    sizes = [total // 4, total // 2, total]
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)", flush=True)
    with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        corpora = build_corpora(root, sizes)
        print(
            f"recorded {total} sessions of {len(session_commands(0))} exec calls "
            f"in {time.perf_counter() - began:.0f} s (local sandbox, SQLite WAL, FULL)",
            flush=True,
        )
        runs = growth_rounds(root, corpora, rounds)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    growth_table(sizes, runs, rounds)


def growth_table(sizes: list[int], runs: Runs, rounds: int) -> None:
    """ms per session (medians over the rounds), replay over the floor of the same round, and
    the per-session cost over the smallest size's."""

    def per_session(n: int, step: str, key: str) -> float:
        return 1000 * statistics.median(r[key] for r in runs[(n, step)]) / n

    def over_floor(n: int) -> float:
        pairs = zip(runs[(n, "replay")], runs[(n, "floor")], strict=True)
        return statistics.median(rep["seconds"] / floor["seconds"] for rep, floor in pairs)

    q, total = sizes[0], sizes[-1]

    def grew(n: int, key: str) -> float:
        return per_session(n, "replay", key) / per_session(q, "replay", key)

    print(f"\nreplay --all, 1 worker, medians of {rounds} rounds: ms per session")
    print(
        "  sessions   replay wall / cpu (own)   floor wall / cpu   replay/floor   x cpu (own)"
        "   x wall"
    )
    for n in sizes:
        rw, rc = per_session(n, "replay", "seconds"), per_session(n, "replay", "cpu")
        ro, fw = per_session(n, "replay", "own"), per_session(n, "floor", "seconds")
        print(
            f"  {n:8d}   {rw:7.1f} / {rc:5.1f} ({ro:4.1f})   {fw:7.1f} / "
            f"{per_session(n, 'floor', 'cpu'):6.1f}   {over_floor(n):12.2f}"
            f"   {grew(n, 'cpu'):5.2f} ({grew(n, 'own'):4.2f})   {grew(n, 'seconds'):6.2f}"
        )
    cpu_x = grew(total, "cpu")
    print(
        f"replay --all per session at {total} over {q} sessions: x{cpu_x:.2f} CPU "
        f"(x{grew(total, 'own'):.2f} its own, sandboxes aside), x{grew(total, 'seconds'):.2f} "
        f"wall (flat is the goal, <= x{FLAT} CPU): {'flat' if cpu_x <= FLAT else 'GROWS'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--segments", type=int, default=9, help="(floor, replay) pairs; the median ratio counts"
    )
    parser.add_argument("--sessions", type=int, default=12, help="corpus size for --all")
    parser.add_argument(
        "--growth", type=int, default=0, help="N: replay --all at N/4, N/2 and N sessions"
    )
    parser.add_argument("--rounds", type=int, default=3, help="--growth rounds (medians)")
    parser.add_argument("--growth-step", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.growth_step:
        print(json.dumps(growth_step(args.growth_step, args.db, args.n)))
    elif args.growth:
        growth(args.growth, args.rounds)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            overhead(Path(tmp), args.segments)
            throughput(Path(tmp), args.sessions)


if __name__ == "__main__":
    main()
