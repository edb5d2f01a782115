"""The fleet's work queue and workers, on PostgreSQL, each figure with its baseline from the
same run:

    .venv/bin/python benchmarks/queue_bench.py [--only claims|model|memory] [--items 4000]
        [--latency 1.0] [--memory-sessions 100,1000,5000]

- claims: 8 competing worker processes claim and release empty items (claim = one UPDATE
  over a FOR UPDATE SKIP LOCKED sub-select, release = one UPDATE): items/s (target >= 500/s)
  and p99 claim latency, against the floor of the same processes doing two bare primary-key
  UPDATEs per item on a table of their own.
- model: 64 intents recorded for real (local sandbox, an exec per session) against the
  scripted OpenAI-compatible server answering after --latency seconds; 1 process with 16 and
  with 64 sessions in flight, and 2 processes x 32. Each session makes 4 model calls, so the
  ideal (the model latency alone) is waves x 4 x latency; printed as ideal / measured
  (targets >= 0.85 at 16 in flight, >= 0.6 at 64 on 2 cores).
- memory: one worker process (16 in flight) against a server answering at once; its RSS after
  each count of finished sessions (target: <= 10% growth from 1,000 to 5,000).

PostgreSQL at 127.0.0.1:5432 (postgres/postgres, as the test command starts it), synchronous
commit on. Prints the load average beside the figures: other work on the 2 cores moves them.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ise_es.store import migrate  # noqa: E402
from ise_es.store.base import NewWorkItem, WorkerInfo  # noqa: E402
from ise_es.store.sql import open_store  # noqa: E402
from tests.support.openai_server import ScriptedOpenAIServer, serve_conversations  # noqa: E402

SERVER = os.environ.get("ISE_ES_BENCH_PG", "postgresql://postgres:postgres@127.0.0.1:5432")
AGENT, USER = "bench-agent", "bench-user"
CALLS_PER_SESSION = 4


def fresh_db(tag: str) -> str:
    name = f"ise_es_qbench_{tag}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    migrate.upgrade(url)
    return url


def drop_db(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# ----------------------------------------------------------------------------- claims


def _claimer(url: str, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    store = open_store(url)
    info = WorkerInfo(worker_id=f"bench-{n}", host="bench", pid=os.getpid())
    latencies = []
    done = 0
    while True:
        t0 = time.perf_counter()
        lease = store.queue.claim(info, lease_seconds=60)
        latencies.append(time.perf_counter() - t0)
        if lease is None:
            break
        store.queue.finish(lease.fence, outcome="done", status="completed")
        done += 1
    store.close()
    out.put((done, latencies))


def _floor_updater(url: str, n: int, per_worker: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(per_worker):
            conn.execute("UPDATE bench_floor SET n = n + 1 WHERE id = %s", (n,))
            conn.execute("UPDATE bench_floor SET n = n + 1 WHERE id = %s", (n,))
    out.put((per_worker, []))


def _run_processes(target: object, args_for: list[tuple[object, ...]]) -> tuple[float, list]:  # type: ignore[type-arg]
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*a, out)) for a in args_for]  # type: ignore[arg-type]
    started = time.perf_counter()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return time.perf_counter() - started, results


def bench_claims(items: int, workers: int = 8) -> None:
    url = fresh_db("claims")
    try:
        with open_store(url) as store:
            store.queue.enqueue(
                [
                    NewWorkItem(source_id=f"i{k}", kind="intent", digest=f"d{k}", spec=b"{}")
                    for k in range(items)
                ]
            )
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_floor (id int PRIMARY KEY, n int NOT NULL)")
            conn.execute("INSERT INTO bench_floor SELECT g, 0 FROM generate_series(0, 63) g")
        floor_s, _ = _run_processes(
            _floor_updater, [(url, n, items // workers) for n in range(workers)]
        )
        seconds, results = _run_processes(_claimer, [(url, n) for n in range(workers)])
        claimed = sum(r[0] for r in results)
        latencies = sorted(x for r in results for x in r[1])
        assert claimed == items, (claimed, items)
        with open_store(url) as store:
            assert {r.state for r in store.queue.items()} == {"done"}
    finally:
        drop_db(url)
    rate, floor_rate = items / seconds, (items // workers) * workers / floor_s
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"claims: {workers} processes, {items} empty items, load {load()}")
    print(
        f"  claim + release       {rate:8.0f} items/s  (target >= 500/s)   "
        f"p50 claim {statistics.median(latencies) * 1000:.2f} ms, p99 {p99:.2f} ms"
    )
    print(
        f"  floor (2 bare UPDATEs) {floor_rate:7.0f} items/s  ratio {rate / floor_rate:.2f}x "
        "of the floor"
    )


# ----------------------------------------------------------------------------- sessions


def _intents(path: Path, n: int) -> None:
    path.write_text(
        "".join(
            json.dumps({"id": f"b{k:05d}", "natural_language_intent": f"check the disk {k}"}) + "\n"
            for k in range(n)
        )
    )


def _enqueue(url: str, server: ScriptedOpenAIServer, n: int, tmp: Path) -> None:
    intents = tmp / "intents.jsonl"
    _intents(intents, n)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cli",
            "record",
            "--db",
            url,
            "--intents",
            str(intents),
            "--enqueue-only",
            *("--agent-model", AGENT, "--agent-base-url", server.base_url),
            *("--user-model", USER, "--user-base-url", server.base_url),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _worker(url: str, concurrency: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli",
            "worker",
            "--db",
            url,
            "--until-empty",
            "--workers",
            str(concurrency),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _window(url: str) -> float:
    """Seconds from the first session's start (its SessionStarted, or its first model request
    if that began earlier: the user's first message is asked for while the sandbox starts) to
    the last SessionEnded: the recording itself, without the worker processes' start-up
    (imports, store connection), which a worker that runs for days pays once."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT max(recorded_at) FILTER (WHERE type = 'session_ended') - LEAST("
            "min(recorded_at) FILTER (WHERE type = 'session_started'), "
            "min(recorded_at - (payload::json->>'latency_ms')::float8 / 1000) "
            "FILTER (WHERE type = 'model_call')) FROM events"
        ).fetchone()
    return float(row[0]) if row and row[0] is not None else float("nan")


def _completed(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM work_items WHERE state = 'done' AND status = 'completed'"
        ).fetchone()
    return int(row[0]) if row else 0


def bench_model(latency: float, intents: int = 64) -> None:
    print(
        f"model-bound: {intents} intents, scripted server answering after {latency} s, "
        f"{CALLS_PER_SESSION} model calls per session, local sandbox, load {load()}"
    )
    for processes, per_process in ((1, 16), (1, 64), (2, 32)):
        url = fresh_db("model")
        try:
            with ScriptedOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
                serve_conversations(server, agent_model=AGENT, user_model=USER, latency_s=latency)
                _enqueue(url, server, intents, Path(tmp))
                started = time.perf_counter()
                procs = [_worker(url, per_process) for _ in range(processes)]
                for p in procs:
                    p.wait()
                seconds = time.perf_counter() - started
            done = _completed(url)
            window = _window(url)
        finally:
            drop_db(url)
        in_flight = processes * per_process
        waves = -(-intents // in_flight)
        ideal = waves * CALLS_PER_SESSION * latency
        print(
            f"  {processes} x {per_process:2d} in flight: recording {window:5.1f} s, "
            f"{done / window * 60:6.1f} sessions/min, ideal {ideal:.1f} s -> "
            f"{ideal / window:.2f} of ideal; with process start-up {seconds:.1f} s -> "
            f"{ideal / seconds:.2f} ({done}/{intents} completed)"
        )


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def bench_memory(marks: list[int]) -> None:
    url = fresh_db("memory")
    total = max(marks)
    print(f"memory: one worker, 16 in flight, {total} sessions, load {load()}")
    try:
        with ScriptedOpenAIServer() as server, tempfile.TemporaryDirectory() as tmp:
            serve_conversations(server, agent_model=AGENT, user_model=USER)
            _enqueue(url, server, total, Path(tmp))
            started = time.perf_counter()
            proc = _worker(url, 16)
            seen: dict[int, int] = {}
            while proc.poll() is None and len(seen) < len(marks):
                done = _completed(url)
                for mark in marks:
                    if mark not in seen and done >= mark:
                        seen[mark] = _rss_kib(proc.pid)
                        print(
                            f"  after {mark:5d} sessions: RSS {seen[mark] / 1024:6.1f} MiB "
                            f"({time.perf_counter() - started:.0f} s)",
                            flush=True,
                        )
                time.sleep(0.5)
            proc.wait()
    finally:
        drop_db(url)
    if 1000 in seen and total in seen and total > 1000:
        growth = seen[total] / seen[1000] - 1
        print(f"  growth from 1,000 to {total:,}: {growth * 100:+.1f}% (target <= +10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["claims", "model", "memory"])
    parser.add_argument("--items", type=int, default=4000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--memory-sessions", default="100,1000,5000")
    args = parser.parse_args()
    if args.only in (None, "claims"):
        bench_claims(args.items)
    if args.only in (None, "model"):
        bench_model(args.latency)
    if args.only in (None, "memory"):
        bench_memory([int(x) for x in args.memory_sessions.split(",")])


if __name__ == "__main__":
    main()
