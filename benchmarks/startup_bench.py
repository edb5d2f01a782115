"""CLI start-up: wall time of the commands people type most, against the interpreter's own
start, measured in the same run. One command:

    .venv/bin/python benchmarks/startup_bench.py [--runs 11] [--keep DIR] [--compare DIR]

It records a six-session store first, with the shipped scenarios through the CLI itself
(`ise-es db upgrade`, `ise-es record --scenario shipped`), then times each command
as a fresh process through the installed `ise-es` entry point (what a user's shell runs):
`ise-es --help`, `ise-es sessions list` and `ise-es sessions show PREFIX` on that store,
`ise-es intents space --personas 1000`, and `python -c pass` as the floor. Medians of --runs
runs, interleaved so that a burst of load from elsewhere on the machine hits every command
alike; wall time and the CPU time the process itself used (which moves less when other work
shares the CPUs). `--compare DIR` times another checkout the same way in the same run
(before/after figures).

Targets (issue 10): `sessions list` on a small SQLite store <= 0.35 s, `--help` <= 0.15 s.
A benchmark, not a test: the figures depend on the machine and on what else runs on it (the
import discipline that makes them possible is tested in tests/test_startup.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The shipped scenarios: a directory in older checkouts, package data (`shipped`) since.
SCENARIOS = ROOT / "fixtures" / "scenarios"
TARGETS = {"ise-es --help": 0.15, "ise-es sessions list": 0.35}


def ise_es() -> str:
    """The `ise-es` script beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("ise-es")
    found = str(beside) if beside.exists() else shutil.which("ise-es")
    if found is None:
        sys.exit("ise-es is not installed: run scripts/setup.sh (pip install -e .)")
    return found


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one fresh process. The CPU time is what the
    process itself spent, so it moves less than the wall time when other work shares the CPUs."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def record_store(
    cli: list[str], scenarios: str, directory: Path, env: dict[str, str]
) -> tuple[str, str]:
    """(store URL, the first session's id) of a store recorded by that checkout's CLI."""
    directory.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{directory / 'startup.db'}"
    for argv in (
        [*cli, "db", "upgrade", "--db", url],
        [*cli, "record", "--scenario", scenarios, "--db", url],
    ):
        subprocess.run(
            argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    listed = subprocess.run(
        [*cli, "sessions", "list", "--json", "--db", url],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    if len(listed) != 6:
        sys.exit(f"expected 6 recorded sessions, the store lists {len(listed)}")
    return url, json.loads(listed[0])["session_id"]


def commands_of(cli: list[str], url: str, session_id: str) -> dict[str, list[str]]:
    # `sessions show` by an 8-character prefix, which is looked up in the stream table.
    return {
        "ise-es --help": [*cli, "--help"],
        "ise-es sessions list": [*cli, "sessions", "list", "--db", url],
        "ise-es sessions show": [*cli, "sessions", "show", session_id[:8], "--db", url],
        "ise-es intents space": [*cli, "intents", "space", "--personas", "1000"],
    }


Samples = dict[str, list[tuple[float, float]]]


def report(title: str, times: Samples, floor: tuple[float, float]) -> dict[str, float]:
    print(title)
    print(f"{'command':<22}{'wall s':>8}{'x floor':>8}{'cpu s':>8}{'x floor':>8}  target (wall)")
    walls = {}
    for name, samples in times.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        walls[name] = wall
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target:.2f} s " + ("met" if wall <= target else "MISSED")
        print(
            f"{name:<22}{wall:>8.3f}{wall / floor[0]:>8.1f}{cpu:>8.3f}{cpu / floor[1]:>8.1f}"
            f"  {verdict}"
        )
    return walls


Tree = tuple[list[str], str, dict[str, str]]
"""How to run one checkout's CLI: (argv prefix, scenarios to record, environment)."""
Run = tuple[str, str, list[str], dict[str, str]]
"""(tree label, command name, argv, environment); the floor has the label ""."""


def main() -> None:
    args = parse_args()
    # No config file or store from the caller's directory or environment leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISE_ES_")}
    env["COLUMNS"] = "80"
    trees = trees_to_time(env, args.compare)
    directory = args.keep or Path(tempfile.mkdtemp(prefix="ise-es-startup-"))
    try:
        runs: list[Run] = [("", "python -c pass", [sys.executable, "-c", "pass"], env)]
        for i, (label, (cli, scenarios, tree_env)) in enumerate(trees.items()):
            url, session_id = record_store(cli, scenarios, directory / f"tree{i}", tree_env)
            commands = commands_of(cli, url, session_id)
            runs += [(label, n, a, tree_env) for n, a in commands.items()]
        times = time_runs(runs, ["", *trees], args.runs)
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)
    report_all(times, args.runs)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="Runs per command (median).")
    parser.add_argument("--keep", type=Path, help="Record the stores here and keep them.")
    parser.add_argument(
        "--compare",
        type=Path,
        help="Another checkout (e.g. `git archive COMMIT | tar -x -C DIR`) timed in the same "
        "run with this interpreter, with a store its own CLI records.",
    )
    return parser.parse_args()


def trees_to_time(env: dict[str, str], compare: Path | None) -> dict[str, Tree]:
    """This checkout's installed CLI, and the `--compare` checkout's when given."""
    trees: dict[str, Tree] = {
        "this tree": ([ise_es()], str(SCENARIOS) if SCENARIOS.is_dir() else "shipped", env)
    }
    if compare is not None:
        other = compare.resolve()
        other_scenarios = other / "fixtures" / "scenarios"
        # The checkout's own modules ahead of the editable install of this one; -P keeps the
        # current directory (this checkout, when run from it) off sys.path.
        trees[f"{other}"] = (
            [sys.executable, "-P", "-c", "import sys; from cli import main; sys.exit(main())"],
            str(other_scenarios) if other_scenarios.is_dir() else "shipped",
            {**env, "PYTHONPATH": str(other)},
        )
    return trees


def time_runs(runs: list[Run], labels: list[str], repeat: int) -> dict[str, Samples]:
    """Every run once to warm the caches, then `repeat` rounds of all of them interleaved, so
    that load from elsewhere hits every command alike."""
    times: dict[str, Samples] = {label: {} for label in labels}
    for label, name, argv, run_env in runs:
        run(argv, run_env)
        times[label][name] = []
    for _ in range(repeat):
        for label, name, argv, run_env in runs:
            times[label][name].append(run(argv, run_env))
    return times


def report_all(times: dict[str, Samples], runs: int) -> None:
    """The floor, a table per tree, the ratio of the two trees, and the load average."""
    pass_samples = times.pop("")["python -c pass"]
    floor = (
        statistics.median(w for w, _ in pass_samples),
        statistics.median(c for _, c in pass_samples),
    )
    print(f"python -c pass: {floor[0]:.3f} s wall, {floor[1]:.3f} s cpu (the floor)")
    walls = {
        label: report(
            f"\n{label}: median of {runs} runs (fresh process, 6-session SQLite store)",
            samples,
            floor,
        )
        for label, samples in times.items()
    }
    if len(walls) == 2:
        mine, other = walls.values()
        print(
            "\nwall time, this tree / the other: "
            + ", ".join(f"{name} {mine[name] / other[name]:.2f}x" for name in mine)
        )
    load = os.getloadavg()[0]
    print(f"load average at the end of the run: {load:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
