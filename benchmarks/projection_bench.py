"""Time the projections over a synthetic corpus on SQLite and PostgreSQL.

    python benchmarks/projection_bench.py --trajectories 23132            # both databases
    python benchmarks/projection_bench.py --trajectories 500 --backends sqlite

For each database: build the corpus once (benchmarks/make_corpus.py; reused when the database
already holds it), then run each step in its own process so its peak RSS is its own:

  read       baseline: the catch-up read the projections do (same query), no processing
             (every projection step runs as its command does: the read split by stream among
             one process per core, 2 here, on a log this size; `-1` steps in one process)
  export     sft-jsonl, openai format, every completed trajectory   target <= 90 s, <= 1 GiB
  hf         hf-dataset, same selection: Parquet + card + plots, with the stats and audit
             read models current (run after them)                  target <= 1.3x export, <= 1 GiB
  audit      audit read model rebuilt from position 0                target <= 90 s
  stats      stats read model rebuilt from position 0 + report       target <= 90 s
  audit-inc / stats-inc / export-inc / hf-inc: reruns with no new events   target <= 2 s
  all        `project all`: export + audit + stats rebuilt, fed by one read of the log
                                                   target <= 1.5x read, <= 1 GiB
  export-1, audit-1, stats-1, all-1: the same in one process (--rounds): what the split saves

    python benchmarks/projection_bench.py --trajectories 2000 --growth --backends sqlite

    python benchmarks/projection_bench.py --hf-pairs 3 --backends sqlite

--hf-pairs N instead brings the read models current and runs sft-jsonl and hf-dataset N times
each, alternating which goes first, printing each pair's ratio, the load average before each
step and the median ratio (wall and CPU): one run decides on a shared machine.

    python benchmarks/projection_bench.py --rounds 3 --backends sqlite --trajectories 23132

--rounds N instead runs the read, the four projections and their `-1` runs in N interleaved
rounds (the order rotating, the load average before each step) and judges each by the median
over rounds of its ratio to the same round's read: <= 1.3x alone, <= 1.5x for all, <= 1 GiB
(the `-1` runs are shown, not judged).

--growth instead builds corpora of 1/4, 1/2 and all of --trajectories and runs the read, the
three projections alone, `all` and `verify` (every hash chain re-walked) at each size,
printing the time per session (wall and this process's CPU) and its ratio to the smallest
size's: flat means the cost grows linearly.

Each line prints seconds, events/s, peak RSS and the ratio to the baseline read of the same
run. Durability as configured by the store (SQLite synchronous=FULL, PostgreSQL defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PG_SERVER = os.environ.get("ISE_ES_BENCH_PG", "postgresql://postgres:postgres@127.0.0.1:5432")
TARGETS = {
    "export": 90.0,
    "audit": 90.0,
    "stats": 90.0,
    "audit-inc": 2.0,
    "stats-inc": 2.0,
    "export-inc": 2.0,
    "hf-inc": 2.0,
}
ALL_RATIO = 1.5
"""`project all`'s target: at most this many times the bare read of the same run."""
ALONE_RATIO = 1.3
"""Each projection alone: at most this many times the bare read (shown, not enforced)."""
HF_RATIO = 1.3
"""hf-dataset's target: at most this many times sft-jsonl's time in the same run."""
RSS_TARGET_MIB = 1024.0


def run_step(step: str, url: str, out: str) -> dict[str, Any]:
    """Executed in a child process: one step, its timing and peak RSS as JSON."""
    from ise_es.commands.common import opened_projection_store

    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    with opened_projection_store(url) as (store, engines):
        result = _run(step, store, engines, out)
    result["seconds"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    parts = resource.getrusage(resource.RUSAGE_CHILDREN)  # a split pass's processes
    result["rss_mib"] = max(usage.ru_maxrss, parts.ru_maxrss) / 1024
    # This process's CPU after its imports, and its parts' (the database server's is not in
    # it): on a shared machine wall time swings with the neighbours' load, CPU time much less.
    result["cpu"] = (
        (usage.ru_utime + usage.ru_stime)
        - (before.ru_utime + before.ru_stime)
        + (parts.ru_utime + parts.ru_stime)
    )
    return result


def _run(step: str, store: Any, engines: Any, out: str) -> dict[str, Any]:
    """One step. `export`, `audit`, `stats` and `all` run as the commands do (the read split
    among one process per core on a large log); with `-1` in one process; `-inc` reruns
    with nothing new to read."""
    from ise_es.projections.export import ExportOptions
    from ise_es.projections.run import run_all, run_audit, run_export, run_stats
    from ise_es.projections.session import SESSION_EVENT_TYPES
    from ise_es.store.sql import open_store

    split: dict[str, Any] = {"workers": 1 if step.endswith("-1") else None, "opener": open_store}
    fresh = not step.endswith("-inc")
    if step == "read":
        return {"events": sum(1 for _ in store.iter_all(0, batch=5000, types=SESSION_EVENT_TYPES))}
    if step == "verify":
        report = store.verify()
        assert report.ok, report.problems[:3]
        return {"events": report.events}
    if step.startswith("all"):
        run = run_all(store, output=out, options=ExportOptions(), force=True, rebuild=True, **split)
        assert run.export is not None and run.stats is not None
        return {
            "events": run.events_read,
            "samples": run.export.samples,
            "trajectories": run.stats.stats.trajectories,
            "parts": run.parts,
        }
    if step.startswith("export"):
        report = run_export(store, out, ExportOptions(), force=fresh, **split)
        return {"samples": report.samples, "bytes": report.bytes, "up_to_date": report.up_to_date}
    if step.startswith("hf"):
        from ise_es.projections.hfdataset import HfOptions, export_hf_dataset

        folder = str(Path(out).with_name("hf-dataset"))
        hf = export_hf_dataset(store, engines, folder, HfOptions(), force=step != "hf-inc")
        return {
            "samples": hf.rows,
            "bytes": sum(f.bytes for f in hf.files),
            "files": len(hf.files),
            "up_to_date": hf.up_to_date,
        }
    if step.startswith("audit"):
        caught = run_audit(store, rebuild=fresh, **split).catch_up
        return {"events": caught.events, "sessions": caught.sessions, "parts": caught.parts}
    assert step.startswith("stats"), step
    return _stats(run_stats(store, status="completed", rebuild=fresh, **split))


def _stats(run: Any) -> dict[str, Any]:
    stats, caught = run.stats, run.catch_up
    return {
        "events": caught.events,
        "sessions": caught.sessions,
        "parts": caught.parts,
        "trajectories": stats.trajectories,
        "user_turns": stats.user_turns.avg,
        "dialogue_turns": stats.dialogue_turns.avg,
        "tool_calls": stats.tool_calls.avg,
        "unique_tools": stats.unique_tools.avg,
    }


def pg_database(name: str) -> str:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def ensure_corpus(url: str, trajectories: int, seed: int) -> None:
    from make_corpus import build  # beside this file

    from ise_es.store import migrate
    from ise_es.store.sql import open_store

    migrate.upgrade(url)
    with open_store(url) as store:
        have = len(store.streams(stream_type="session"))
    want = trajectories + round(trajectories * 0.03)
    if have == want:
        print(f"  corpus present: {have} sessions", flush=True)
        return
    if have:
        raise SystemExit(f"{url} holds {have} sessions, not {want}: use an empty database")
    result = build(url, trajectories, seed=seed, quiet=False)
    print(
        f"  corpus built: {result['sessions']} sessions, {result['events']} events in "
        f"{result['seconds']:.0f} s ({result['events'] / result['seconds']:.0f} events/s)",
        flush=True,
    )


def child(step: str, url: str, out: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--step", step, "--db", url, "--out", out],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _detail(step: str, r: dict[str, Any], seconds: dict[str, float], cpu: dict[str, float]) -> str:
    """What a step's line says beyond its time."""
    if step == "export":
        return f"  {r['samples']} samples, {r['bytes'] / 2**20:.0f} MiB"
    if step == "hf":
        return (
            f"  {r['samples']} rows, {r['files']} Parquet files, "
            f"{r['bytes'] / 2**20:.0f} MiB, x{r['seconds'] / seconds['export']:.2f} "
            f"sft-jsonl's time, x{r['cpu'] / cpu['export']:.2f} its CPU"
        )
    if step in ("export-inc", "hf-inc"):
        return "  up to date" if r["up_to_date"] else "  NOT up to date"
    if step == "stats":
        return (
            f"  Table 3: {r['trajectories']} traj, {r['user_turns']} user turns, "
            f"{r['dialogue_turns']} dialogue turns, {r['tool_calls']} calls, "
            f"{r['unique_tools']} unique tools"
        )
    return ""


def bench(backend: str, url: str, trajectories: int, seed: int) -> list[str]:
    print(f"{backend}: {url}", flush=True)
    ensure_corpus(url, trajectories, seed)
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
        out = str(Path(tmp) / "sft.jsonl")
        base = child("read", url, out)
        events = base["events"]
        print(
            f"  {'read (baseline)':<16} {base['seconds']:7.2f} s  "
            f"{events / base['seconds']:9.0f} ev/s"
            f"  {base['rss_mib']:6.0f} MiB  x1.00",
            flush=True,
        )
        # hf-dataset after audit and stats: it reads their (now current) read models.
        steps = ("export", "audit", "stats", "hf", "export-inc", "hf-inc", "audit-inc")
        export_seconds = 0.0
        seconds: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for step in (*steps, "stats-inc"):
            r = child(step, url, out)
            seconds[step] = r["seconds"]
            cpu[step] = r["cpu"]
            if step == "export":
                export_seconds = r["seconds"]
            target = TARGETS[step] if step != "hf" else HF_RATIO * export_seconds
            big = step in ("export", "hf")
            ok = r["seconds"] <= target and (not big or r["rss_mib"] <= RSS_TARGET_MIB)
            extra = _detail(step, r, seconds, cpu)
            if step in ("export-inc", "hf-inc"):
                ok = ok and r["up_to_date"]
            rate = events / r["seconds"] if not step.endswith("-inc") else 0.0
            print(
                f"  {step:<16} {r['seconds']:7.2f} s  cpu {r['cpu']:6.2f} s  {rate:9.0f} ev/s  "
                f"{r['rss_mib']:6.0f} MiB"
                f"  x{r['seconds'] / base['seconds']:.2f}  target <= {target:.3g} s"
                f"{' and 1 GiB' if big else ''}: {'ok' if ok else 'MISSED'}{extra}",
                flush=True,
            )
            if not ok:
                problems.append(f"{backend} {step}")
        cold = seconds["audit"] + seconds["stats"] + seconds["hf"]
        cold_cpu = cpu["audit"] + cpu["stats"] + cpu["hf"]
        print(
            f"  {'hf, cold':<16} {cold:7.2f} s  cpu {cold_cpu:6.2f} s  (audit + stats rebuilt + "
            f"hf: read models from scratch, an upper bound) x{cold / export_seconds:.2f} "
            f"sft-jsonl's time, x{cold_cpu / cpu['export']:.2f} its CPU",
            flush=True,
        )
        if not _all_line(child("all", url, out), base, seconds, cpu):
            problems.append(f"{backend} all")
    return problems


def _all_line(
    r: dict[str, Any], base: dict[str, Any], seconds: dict[str, float], cpu: dict[str, float]
) -> bool:
    """Print `project all` against the read and the three alone; whether it met its target."""
    alone = seconds["export"] + seconds["audit"] + seconds["stats"]
    alone_cpu = cpu["export"] + cpu["audit"] + cpu["stats"]
    ok = bool(r["seconds"] <= ALL_RATIO * base["seconds"] and r["rss_mib"] <= RSS_TARGET_MIB)
    print(
        f"  {'all (one read)':<16} {r['seconds']:7.2f} s  cpu {r['cpu']:6.2f} s  "
        f"{base['events'] / r['seconds']:9.0f} ev/s  {r['rss_mib']:6.0f} MiB  "
        f"x{r['seconds'] / base['seconds']:.2f}  target <= {ALL_RATIO}x read and 1 GiB: "
        f"{'ok' if ok else 'MISSED'}  export + audit + stats run alone: {alone:.2f} s "
        f"(x{alone / base['seconds']:.2f} read), cpu {alone_cpu:.2f} s",
        flush=True,
    )
    return ok


RATIO_STEPS = ("read", "export", "audit", "stats", "all", "export-1", "audit-1", "stats-1", "all-1")


def ratios(backend: str, url: str, trajectories: int, seed: int, rounds: int) -> list[str]:
    """The read, the three projections alone and `project all` in `rounds` interleaved rounds
    (the order rotating each round, the load average printed before every step): each step's
    verdict is the median over rounds of its ratio to the read of the same round, so one run
    decides on a shared machine."""
    import statistics

    print(f"{backend}: {url}", flush=True)
    ensure_corpus(url, trajectories, seed)
    wall: dict[str, list[float]] = {s: [] for s in RATIO_STEPS}
    cpu: dict[str, list[float]] = {s: [] for s in RATIO_STEPS}
    rss: dict[str, float] = dict.fromkeys(RATIO_STEPS, 0.0)
    with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
        out = str(Path(tmp) / "sft.jsonl")
        for i in range(rounds):
            k = i % len(RATIO_STEPS)
            got: dict[str, dict[str, Any]] = {}
            for step in RATIO_STEPS[k:] + RATIO_STEPS[:k]:
                load = os.getloadavg()[0]
                got[step] = r = child(step, url, out)
                rss[step] = max(rss[step], r["rss_mib"])
                print(
                    f"  round {i} {step:<7} {r['seconds']:7.2f} s  cpu {r['cpu']:6.2f} s  "
                    f"{r['rss_mib']:6.0f} MiB  load {load:.2f}",
                    flush=True,
                )
            for step, r in got.items():
                wall[step].append(r["seconds"] / got["read"]["seconds"])
                cpu[step].append(r["cpu"] / got["read"]["cpu"])
    problems = []
    for step in RATIO_STEPS[1:]:
        if step.endswith("-1"):  # one process: what the split saves, shown without a target
            print(
                f"  {step:<8} x{statistics.median(wall[step]):.2f} the read's time in one "
                f"process (rounds {min(wall[step]):.2f}-{max(wall[step]):.2f}), "
                f"x{statistics.median(cpu[step]):.2f} its CPU, peak {rss[step]:.0f} MiB",
                flush=True,
            )
            continue
        target = ALL_RATIO if step == "all" else ALONE_RATIO
        median = statistics.median(wall[step])
        ok = median <= target and rss[step] <= RSS_TARGET_MIB
        print(
            f"  {step:<7} x{median:.2f} the read's time (rounds {min(wall[step]):.2f}-"
            f"{max(wall[step]):.2f}), x{statistics.median(cpu[step]):.2f} its CPU, peak "
            f"{rss[step]:.0f} MiB; target <= x{target} and 1 GiB: {'ok' if ok else 'MISSED'}",
            flush=True,
        )
        if not ok:
            problems.append(f"{backend} {step}")
    return problems


def hf_pairs(backend: str, url: str, trajectories: int, seed: int, pairs: int) -> list[str]:
    """hf-dataset against sft-jsonl in interleaved pairs (order alternating), read models
    current first (hf reads them): the verdict is the median of the per-pair wall ratios."""
    import statistics

    print(f"{backend}: {url}", flush=True)
    ensure_corpus(url, trajectories, seed)
    wall: list[float] = []
    cpu: list[float] = []
    rss = 0.0
    with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
        out = str(Path(tmp) / "sft.jsonl")
        for step in ("audit-inc", "stats-inc"):
            child(step, url, out)
        for i in range(pairs):
            r: dict[str, dict[str, Any]] = {}
            for step in ("export", "hf") if i % 2 == 0 else ("hf", "export"):
                load = os.getloadavg()[0]
                r[step] = child(step, url, out)
                print(
                    f"  {i} {step:<7} {r[step]['seconds']:7.2f} s  cpu {r[step]['cpu']:6.2f} s  "
                    f"{r[step]['rss_mib']:6.0f} MiB  load {load:.2f}",
                    flush=True,
                )
            wall.append(r["hf"]["seconds"] / r["export"]["seconds"])
            cpu.append(r["hf"]["cpu"] / r["export"]["cpu"])
            rss = max(rss, r["hf"]["rss_mib"])
            print(f"  pair {i}: hf x{wall[-1]:.2f} sft-jsonl's time, x{cpu[-1]:.2f} its CPU")
    median = statistics.median(wall)
    ok = median <= HF_RATIO and rss <= RSS_TARGET_MIB
    print(
        f"  hf-dataset / sft-jsonl: median x{median:.2f} time ({min(wall):.2f}-{max(wall):.2f}), "
        f"x{statistics.median(cpu):.2f} CPU, peak {rss:.0f} MiB; target <= x{HF_RATIO} time "
        f"and 1 GiB: {'ok' if ok else 'MISSED'}",
        flush=True,
    )
    return [] if ok else [f"{backend} hf"]


GROWTH_STEPS = ("read", "export", "audit", "stats", "all", "verify")
FRACTIONS = ((1, 4), (1, 2), (1, 1))


def growth(backend: str, directory: Path, trajectories: int, seed: int) -> list[str]:
    """Time per session at 1/4, 1/2 and the whole corpus: each size is its own corpus (same
    generator, same seed), each step its own process, steps interleaved within a size."""
    rows: dict[tuple[int, str], tuple[float, float]] = {}
    sizes = [trajectories * num // den for num, den in FRACTIONS]
    with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
        out = str(Path(tmp) / "sft.jsonl")
        for n in sizes:
            url = corpus_url(backend, directory, n, seed)
            print(f"{backend}: {n} trajectories, {url}", flush=True)
            ensure_corpus(url, n, seed)
            for step in GROWTH_STEPS:
                r = child(step, url, out)
                rows[(n, step)] = (r["seconds"], r["cpu"])
    print(f"\n{backend}: ms per session, wall / cpu (x = CPU per session over {sizes[0]}'s)")
    print("  " + f"{'step':<8}" + "".join(f"{n:>26}" for n in sizes))
    problems = []
    for step in GROWTH_STEPS:
        cells = []
        c0 = rows[(sizes[0], step)][1]
        for n in sizes:
            wall, cpu = rows[(n, step)]
            ratio = (cpu / n) / (c0 / sizes[0])
            cells.append(f"{1000 * wall / n:7.1f} / {1000 * cpu / n:5.1f} x{ratio:4.2f}")
        print("  " + f"{step:<8}" + "".join(f"{c:>26}" for c in cells), flush=True)
        c_full = rows[(sizes[-1], step)][1]
        if (c_full / sizes[-1]) > 1.25 * (c0 / sizes[0]):
            problems.append(f"{backend} {step} cpu per session grows")
    return problems


def corpus_url(backend: str, directory: Path, trajectories: int, seed: int) -> str:
    name = f"ise_es_bench_{trajectories}_s{seed}"
    if backend == "sqlite":
        return f"sqlite:///{directory / (name + '.db')}"
    if backend == "postgres":
        return pg_database(name)
    raise SystemExit(f"unknown backend {backend!r}: sqlite or postgres")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trajectories", type=int, default=23132)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--dir", default=None, help="where the SQLite corpus lives (kept for reuse)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--growth", action="store_true", help="time per session at 1/4, 1/2 and all of it"
    )
    parser.add_argument(
        "--hf-pairs", type=int, default=0, help="hf-dataset vs sft-jsonl, N interleaved pairs"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="read, export, audit, stats and all in N interleaved rounds: median ratios",
    )
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(run_step(args.step, args.db, args.out)))
        return
    directory = Path(args.dir or tempfile.gettempdir())
    problems: list[str] = []
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)", flush=True)
    for backend in args.backends.split(","):
        if args.growth:
            problems += growth(backend, directory, args.trajectories, args.seed)
            continue
        url = corpus_url(backend, directory, args.trajectories, args.seed)
        if args.rounds:
            problems += ratios(backend, url, args.trajectories, args.seed, args.rounds)
            continue
        if args.hf_pairs:
            problems += hf_pairs(backend, url, args.trajectories, args.seed, args.hf_pairs)
            continue
        problems += bench(backend, url, args.trajectories, args.seed)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("all targets met" if not problems else "targets missed: " + ", ".join(problems))
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
