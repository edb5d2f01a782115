"""Event store throughput: ise-es against the eventsourcing library and a raw-INSERT floor.

Workload (the same for every contestant): STREAMS streams x 60 events, appended in batches of 10
(one tool call's worth) with ~600-byte payloads, then read back in global order.

The raw floor writes the rows ise-es writes (same columns, same sizes) with plain INSERTs, one
transaction per batch, into a table with no index but its primary key: no checks, no hashing,
no head, no idempotency. eventsourcing writes its own rows (its application recorder).

Durability is the same everywhere: SQLite in WAL mode with synchronous=FULL (eventsourcing
leaves SQLite's default, FULL; we check it), PostgreSQL with synchronous_commit=on (the
server default). Writers are processes, not threads.

    .venv/bin/python benchmarks/store_bench.py [--streams 2000] [--only sqlite|postgres]

The machine may be busy with other work (2 cores): the contestants' appends are interleaved in
segments and reads take the best of several rounds, so load bursts hit everyone alike; the
load average is printed at both ends. Compare ratios, not absolute figures. Each append ratio
is printed twice: of the totals, and as the median (range) of the per-segment ratios, which a
burst that hit one contestant in one segment does not move; the targets are judged on the
median.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store_contestants import (
    BATCH,
    EVENTS_PER_STREAM,
    LADDER,
    RAW_TABLE,
    es_payload,
    es_pg,
    es_pg_reader,
    es_pg_writer,
    es_sqlite_reader,
    es_sqlite_writer,
    ise_es_reader,
    ise_es_writer,
    ladder_setup,
    ladder_writer,
    raw_pg_writer,
    raw_sqlite_writer,
    streams_for,
    wait_for_horizon,
)

from ise_es.store import migrate

# ---------------------------------------------------------------------------- harness


def _written_bytes() -> int:
    """Bytes this process has caused to be sent to storage (Linux /proc/self/io; 0 elsewhere):
    WAL frames and checkpoints on SQLite, nothing on PostgreSQL (the server writes)."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))
    except (OSError, StopIteration):
        return 0


def _no_tick() -> None:
    pass


class WalCounter:
    """WAL frames (pages) an SQLite writer appends, read from the WAL index after each append.

    The -shm file starts with the WAL index header, whose mxFrame (a native u32 at byte 16)
    is the number of valid frames in the WAL. A checkpoint restarts the WAL, after which
    mxFrame counts from zero again, so a decrease means "restarted, these are new". The file
    is opened once and never closed while the writer runs: closing a descriptor of a file
    drops every POSIX lock this process holds on it, SQLite's included.
    """

    def __init__(self, db_path: str) -> None:
        self.shm = db_path + "-shm"
        self.fd: int | None = None
        self.last = 0
        self.frames = 0

    def _read(self) -> int:
        assert self.fd is not None
        return int.from_bytes(os.pread(self.fd, 4, 16), sys.byteorder)

    def tick(self) -> None:
        if self.fd is None:
            self.fd = os.open(self.shm, os.O_RDONLY)
            self.last = 0
        now = self._read()
        self.frames += now if now < self.last else now - self.last
        self.last = now


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_writer(
    target: Callable[..., None], arg: object, share: list[str], wal_db: str | None
) -> tuple[int, float, int]:
    """Run one writer here: (bytes to storage, CPU seconds, WAL frames)."""
    counter = WalCounter(wal_db) if wal_db else None
    before, cpu = _written_bytes(), _cpu_seconds()
    target(arg, share, counter.tick if counter else _no_tick)
    return _written_bytes() - before, _cpu_seconds() - cpu, counter.frames if counter else 0


def _measured(
    target: Callable[..., None], arg: object, share: list[str], wal_db: str | None, out: Any
) -> None:
    out.put(measure_writer(target, arg, share, wal_db))


class Usage:
    """What a group of writer processes used."""

    def __init__(self, seconds: float, results: list[tuple[int, float, int]]) -> None:
        self.seconds = seconds
        self.written = sum(r[0] for r in results)
        self.cpu = sum(r[1] for r in results)
        self.frames = sum(r[2] for r in results)


def run_writers(
    target: Callable[..., None],
    arg: object,
    stream_ids: list[str],
    writers: int,
    wal_db: str | None = None,
) -> Usage:
    """Wall-clock seconds for `writers` processes to write their share of the streams, and
    the bytes, CPU and WAL frames they used."""
    ctx = mp.get_context("fork")
    shares = [stream_ids[i::writers] for i in range(writers)]
    out = ctx.SimpleQueue()
    procs = [
        ctx.Process(target=_measured, args=(target, arg, share, wal_db, out)) for share in shares
    ]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{target.__name__} failed with exit code {p.exitcode}")
    seconds = time.perf_counter() - start
    return Usage(seconds, [out.get() for _ in procs])


# A baseline: another checkout's ise-es (`--baseline TREE`, e.g. a git worktree of an older
# commit), run by a fork server that imported that tree's ise_es once, so its writers start
# the way this tree's do (forked from a process with everything imported) and the two are
# interleaved in the same run. Protocol: one JSON request per line on stdin, one JSON reply
# per line on stdout.
BASELINE_SERVER = r"""
import json, os, sys
tree, bench_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, tree)
import ise_es.store.sql, ise_es.store.migrate  # the baseline's, before the bench imports
sys.path.insert(1, bench_dir)
import store_bench as sb
reply = sys.stdout
sys.stdout = sys.stderr
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "upgrade":
        ise_es.store.migrate.upgrade(req["url"])
        result = None
    else:
        ids, writers, wal_db = req["ids"], req["writers"], req["wal_db"]
        usage = sb.run_writers(sb.ise_es_writer, req["url"], ids, writers, wal_db)
        result = [usage.seconds, usage.written, usage.cpu, usage.frames]
    reply.write(json.dumps(result) + "\n")
    reply.flush()
"""


class BaselineServer:
    def __init__(self, tree: str) -> None:
        import subprocess

        self.tree = tree
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BASELINE_SERVER, tree, str(Path(__file__).parent)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, **request: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the baseline server for {self.tree} died")
        return json.loads(line)

    def writer(self, url: str) -> Callable[..., Usage]:
        """A writer group for `run`: the baseline's ise-es appending to `url`."""

        def write(ids: list[str], writers: int, wal_db: str | None) -> Usage:
            seconds, written, cpu, frames = self.call(
                op="write", url=url, ids=ids, writers=writers, wal_db=wal_db
            )
            return Usage(seconds, [(written, cpu, frames)])

        return write

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - start


class PgServer:
    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")
        self.made: list[str] = []

    def fresh(self, label: str) -> str:
        name = f"ise_es_bench_{label}_{os.getpid()}"
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return f"{self.server}/{name}"

    def drop_all(self) -> None:
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dsn_of(url: str) -> dict[str, str]:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return {k: str(info[k]) for k in ("dbname", "host", "port", "user", "password")}


class Contestant:
    """One appender: a writer function, its target, how many processes share the streams, and
    the SQLite file whose WAL frames are counted (None on PostgreSQL)."""

    def __init__(
        self,
        name: str,
        writer: Callable[..., None],
        target: object,
        procs: int,
        wal_db: str | None = None,
        group: Callable[[list[str], int, str | None], Usage] | None = None,
    ) -> None:
        self.name, self.procs, self.wal_db = name, procs, wal_db
        self.group = group or (
            lambda ids, procs, wal_db: run_writers(writer, target, ids, procs, wal_db)
        )
        self.seconds = self.cpu = 0.0
        self.written = self.frames = 0
        self.segments: list[float] = []
        """Seconds of each segment, for the per-segment ratios (`segment_ratios`)."""

    def write(self, ids: list[str]) -> None:
        usage = self.group(ids, self.procs, self.wal_db)
        self.segments.append(usage.seconds)
        self.seconds += usage.seconds
        self.written += usage.written
        self.cpu += usage.cpu
        self.frames += usage.frames


class Reader:
    def __init__(self, name: str, read: Callable[[], int], before: Callable[[], None]) -> None:
        self.name, self.read, self.before = name, read, before


def sqlite_setup(
    tmp: Path, baselines: list[BaselineServer], *, costs: bool = False
) -> tuple[list[Contestant], list[Reader]]:
    url = f"sqlite:///{tmp / 'ise.db'}"
    migrate.upgrade(url)
    es_path = str(tmp / "es.db")
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    SQLiteApplicationRecorder(SQLiteDatastore(db_name=es_path)).create_table()
    probe = sqlite3.connect(es_path)
    assert probe.execute("PRAGMA synchronous").fetchone()[0] == 2, "eventsourcing not at FULL"
    assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "eventsourcing not WAL"
    probe.close()
    raw_path = str(tmp / "raw.db")
    with sqlite3.connect(raw_path) as c:
        c.execute(RAW_TABLE.format(pk="INTEGER PRIMARY KEY", real="REAL"))
    contestants = [
        Contestant("ise-es sqlite append (1 writer)", ise_es_writer, url, 1, str(tmp / "ise.db")),
        Contestant("eventsourcing sqlite append", es_sqlite_writer, es_path, 1, es_path),
        Contestant("raw floor sqlite", raw_sqlite_writer, raw_path, 1, raw_path),
    ]
    for i, server in enumerate(baselines):
        path = str(tmp / f"baseline{i}.db")
        server.call(op="upgrade", url=f"sqlite:///{path}")
        name = f"baseline{i} sqlite append (1 writer)"
        group = server.writer(f"sqlite:///{path}")
        contestants.append(Contestant(name, ise_es_writer, None, 1, path, group))
    for level, name in enumerate(LADDER if costs else []):
        path = str(tmp / f"ladder{level}.db")
        ladder_setup(path)
        contestants.append(Contestant(name, ladder_writer, (path, level), 1, path))
    readers = [
        Reader("ise-es sqlite read_all", lambda: ise_es_reader(url), lambda: None),
        Reader("eventsourcing sqlite read", lambda: es_sqlite_reader(es_path), lambda: None),
    ]
    return contestants, readers


def postgres_setup(
    pg: PgServer, total: int, baselines: list[BaselineServer]
) -> tuple[list[Contestant], list[Reader]]:
    url, url4 = pg.fresh("ise1"), pg.fresh("ise4")
    migrate.upgrade(url)
    migrate.upgrade(url4)
    es_dsn = dsn_of(pg.fresh("es"))
    es_pg(es_dsn).create_table()  # type: ignore[attr-defined]
    raw_url = pg.fresh("raw")
    with psycopg.connect(raw_url, autocommit=True) as c:
        c.execute(RAW_TABLE.format(pk="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION"))
    contestants = [
        Contestant("ise-es postgres append (1 writer)", ise_es_writer, url, 1),
        Contestant("ise-es postgres append (4 writers)", ise_es_writer, url4, 4),
        Contestant("eventsourcing postgres append", es_pg_writer, es_dsn, 1),
        Contestant("raw floor postgres", raw_pg_writer, raw_url, 1),
    ]
    for i, server in enumerate(baselines):
        for writers in (1, 4):
            base_url = pg.fresh(f"base{i}w{writers}")
            server.call(op="upgrade", url=base_url)
            name = f"baseline{i} postgres append ({writers} writer{'s' if writers > 1 else ''})"
            group = server.writer(base_url)
            contestants.append(Contestant(name, ise_es_writer, None, writers, None, group))
    readers = [
        Reader(
            "ise-es postgres read_all",
            lambda: ise_es_reader(url),
            lambda: wait_for_horizon(url, total),
        ),
        Reader("eventsourcing postgres read", lambda: es_pg_reader(es_dsn), lambda: None),
    ]
    return contestants, readers


def run(
    contestants: list[Contestant],
    readers: list[Reader],
    ids: list[str],
    total: int,
    segments: int,
    read_rounds: int,
) -> dict[str, float]:
    """Appends in interleaved segments, then reads in interleaved rounds.

    Each contestant writes the same streams; the streams are cut into `segments` slices and
    every contestant writes slice i before anyone starts slice i+1, so a burst of load from
    something else on the machine hits all contestants alike instead of whoever ran then.
    """
    size = -(-len(ids) // segments)
    for start in range(0, len(ids), size):
        for c in contestants:
            c.write(ids[start : start + size])
    results = {c.name: total / c.seconds for c in contestants}
    SEGMENTS.update((c.name, c.segments) for c in contestants)
    appends = total // BATCH
    for c in contestants:
        PER_APPEND[c.name] = (c.written / appends, c.frames / appends, c.cpu / appends)
    for r in readers:
        r.before()
    for _ in range(read_rounds):
        for r in readers:
            n, secs = timed(r.read)
            assert n == total, (r.name, n)
            results[r.name] = max(results.get(r.name, 0.0), n / secs)
    return results


PER_APPEND: dict[str, tuple[float, float, float]] = {}
"""Per append (one batch of BATCH events) and contestant: bytes sent to storage and WAL frames
(SQLite only; PostgreSQL's server does the writing), and the writer processes' CPU seconds
(user + system; on PostgreSQL the client's only)."""

SEGMENTS: dict[str, list[float]] = {}
"""Per appending contestant: the seconds of each segment, in the order they ran."""


def segment_ratios(num: str, den: str) -> list[float] | None:
    """Throughput ratios num/den segment by segment (the same streams, written minutes
    apart at most), or None when either is not an appending contestant of this run. A load
    burst from elsewhere on the machine skews the ratio of the totals by however long it hit
    one contestant; it skews one segment's ratio only, which the median ignores."""
    ours, theirs = SEGMENTS.get(num), SEGMENTS.get(den)
    if not ours or not theirs:
        return None
    return [b / a for a, b in zip(ours, theirs, strict=True)]


def _ratio_line(label: str, width: int, ratio: float, ratios: list[float] | None) -> str:
    """One ratio of the totals, and the median (range) of the per-segment ratios."""
    line = f"{label:<{width}}  {ratio:>9.2f}x"
    if ratios:
        median = statistics.median(ratios)
        line += f"  segment median {median:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    return line


RATIOS = [
    # (label, numerator, denominator, target; 0 = shown for information)
    (
        "sqlite append / eventsourcing",
        "ise-es sqlite append (1 writer)",
        "eventsourcing sqlite append",
        1.05,
    ),
    ("sqlite append / raw floor", "ise-es sqlite append (1 writer)", "raw floor sqlite", 0.75),
    ("sqlite read_all / eventsourcing", "ise-es sqlite read_all", "eventsourcing sqlite read", 1.0),
    ("eventsourcing sqlite / raw floor", "eventsourcing sqlite append", "raw floor sqlite", 0.0),
    (
        "postgres 1 writer / eventsourcing",
        "ise-es postgres append (1 writer)",
        "eventsourcing postgres append",
        1.5,
    ),
    (
        "postgres 4 writers / eventsourcing 1",
        "ise-es postgres append (4 writers)",
        "eventsourcing postgres append",
        2.5,
    ),
    (
        "postgres read_all / eventsourcing",
        "ise-es postgres read_all",
        "eventsourcing postgres read",
        1.0,
    ),
    (
        "postgres 1 writer / raw floor",
        "ise-es postgres append (1 writer)",
        "raw floor postgres",
        0.0,
    ),
    (
        "postgres 4 writers / raw floor",
        "ise-es postgres append (4 writers)",
        "raw floor postgres",
        0.0,
    ),
]

# --costs: what each guarantee costs against the floor, and what ise-es adds to the bare SQL
# of all of them (its API: pool, head cache, error handling, the store's open and close).
RATIOS += [(f"{name} / raw floor", name, "raw floor sqlite", 0.0) for name in LADDER]
RATIOS.append(
    ("sqlite append / bare guarantees", "ise-es sqlite append (1 writer)", LADDER[-1], 0.0)
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument(
        "--segments",
        type=int,
        default=10,
        help="interleave the contestants' appends in this many slices of the streams",
    )
    parser.add_argument(
        "--read-rounds", type=int, default=3, help="interleaved read_all runs; the best counts"
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument(
        "--pg",
        default=os.environ.get("ISE_ES_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432"),
    )
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="TREE",
        help="also run the ise-es of another checkout (e.g. a git worktree of an older commit)",
    )
    parser.add_argument(
        "--costs",
        action="store_true",
        help="also run bare-SQL contestants that add ise-es's guarantees one by one (SQLite)",
    )
    return parser.parse_args()


def report(best: dict[str, float], baselines: list[str]) -> None:
    """Throughput, what each append cost, and the ratios against the targets."""
    width = max(map(len, best))
    for name, value in best.items():
        print(f"{name:<{width}}  {value:>10,.0f} ev/s")
    print(f"\nper append of {BATCH} events:")
    for name, (written, frames, cpu) in PER_APPEND.items():
        storage = (
            f"{written / 1024:6.1f} KiB to storage, {frames:5.2f} WAL pages, " if frames else ""
        )
        print(f"{name:<{width}}  {storage}{cpu * 1e6:5.0f} us CPU")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}\n")
    width = max([width] + [len(r[0]) for r in RATIOS if r[1] in best and r[2] in best])
    for label, num, den, target in RATIOS:
        if num not in best or den not in best:
            continue
        ratio = best[num] / best[den]
        ratios = segment_ratios(num, den)
        judged = statistics.median(ratios) if ratios else ratio
        verdict = "  ok" if judged >= target else f"  BELOW target {target}x"
        verdict = verdict if target else ""
        print(_ratio_line(label, width, ratio, ratios) + verdict)
    for i, tree in enumerate(baselines):
        for what in (
            "sqlite append (1 writer)",
            "postgres append (1 writer)",
            "postgres append (4 writers)",
        ):
            ours, theirs = f"ise-es {what}", f"baseline{i} {what}"
            if ours in best and theirs in best:
                label = f"{what} / baseline{i}"
                ratio, ratios = best[ours] / best[theirs], segment_ratios(ours, theirs)
                print(_ratio_line(label, width, ratio, ratios) + f"  ({tree})")


def main() -> None:
    args = parse_args()
    ids = streams_for(args.streams)
    total = args.streams * EVENTS_PER_STREAM
    pg = PgServer(args.pg)
    print(
        f"workload: {args.streams} streams x {EVENTS_PER_STREAM} events, batches of {BATCH}, "
        f"~{len(es_payload())}-byte payloads ({total} events); appends interleaved in "
        f"{args.segments} segments, reads best of {args.read_rounds}"
    )
    print(
        "durability: SQLite WAL synchronous=FULL (every commit fsynced) for all three; "
        "PostgreSQL synchronous_commit=on for all three"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)\n")
    best: dict[str, float] = {}
    baselines = [BaselineServer(tree) for tree in args.baseline]
    try:
        if args.only != "postgres":
            with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
                contestants, readers = sqlite_setup(Path(tmp), baselines, costs=args.costs)
                best.update(run(contestants, readers, ids, total, args.segments, args.read_rounds))
        if args.only != "sqlite":
            contestants, readers = postgres_setup(pg, total, baselines)
            best.update(run(contestants, readers, ids, total, args.segments, args.read_rounds))
    finally:
        for server in baselines:
            server.close()
        pg.drop_all()
    report(best, args.baseline)


if __name__ == "__main__":
    main()
