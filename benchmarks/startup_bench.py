"""CLI start-up: wall time of the commands people type most, against the interpreter's own
start, measured in the same run. One command:

    .venv/bin/python benchmarks/startup_bench.py [--runs 11] [--keep DIR]

It records a six-session store first, with the shipped scenarios through the CLI itself
(`ise-es db upgrade`, `ise-es record --scenario shipped`), then times each command
as a fresh process through the installed `ise-es` entry point (what a user's shell runs):
`ise-es --help`, `ise-es sessions list` on that store, `ise-es intents space --personas 1000`,
and `python -c pass` as the floor. Medians of --runs runs, interleaved so that a burst of load
from elsewhere on the machine hits every command alike.

Targets (issue 10): `sessions list` on a small SQLite store <= 0.35 s, `--help` <= 0.15 s.
A benchmark, not a test: the figures depend on the machine and on what else runs on it (the
import discipline that makes them possible is tested in tests/test_startup.py).
"""

from __future__ import annotations

import argparse
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


def record_store(cli: str, directory: Path, env: dict[str, str]) -> str:
    url = f"sqlite:///{directory / 'startup.db'}"
    scenarios = str(SCENARIOS) if SCENARIOS.is_dir() else "shipped"
    for argv in (
        [cli, "db", "upgrade", "--db", url],
        [cli, "record", "--scenario", scenarios, "--db", url],
    ):
        subprocess.run(
            argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    listed = subprocess.run(
        [cli, "sessions", "list", "--json", "--db", url],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    if len(listed) != 6:
        sys.exit(f"expected 6 recorded sessions, the store lists {len(listed)}")
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=11, help="Runs per command (median).")
    parser.add_argument("--keep", type=Path, help="Record the store here and keep it.")
    args = parser.parse_args()

    cli = ise_es()
    # No config file or store from the caller's directory or environment leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISE_ES_")}
    env["COLUMNS"] = "80"
    directory = args.keep or Path(tempfile.mkdtemp(prefix="ise-es-startup-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        url = record_store(cli, directory, env)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "ise-es --help": [cli, "--help"],
            "ise-es sessions list": [cli, "sessions", "list", "--db", url],
            "ise-es intents space": [cli, "intents", "space", "--personas", "1000"],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for argv in commands.values():  # warm the page cache and the bytecode caches
            run(argv, env)
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(run(argv, env))
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)

    def medians(name: str) -> tuple[float, float]:
        return (
            statistics.median(w for w, _ in times[name]),
            statistics.median(c for _, c in times[name]),
        )

    floor_wall, floor_cpu = medians("python -c pass")
    print(f"start-up, median of {args.runs} runs each (fresh process, 6-session SQLite store)")
    print(f"{'command':<22}{'wall s':>8}{'x floor':>8}{'cpu s':>8}{'x floor':>8}  target (wall)")
    for name in times:
        wall, cpu = medians(name)
        target = TARGETS.get(name)
        verdict = ""
        if target is not None:
            verdict = f"<= {target:.2f} s " + ("met" if wall <= target else "MISSED")
        print(
            f"{name:<22}{wall:>8.3f}{wall / floor_wall:>8.1f}{cpu:>8.3f}{cpu / floor_cpu:>8.1f}"
            f"  {verdict}"
        )
    load = os.getloadavg()[0]
    print(f"load average during the run: {load:.2f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
