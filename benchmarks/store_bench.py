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
load average is printed at both ends. Compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ise_es.events import ToolCallFinished
from ise_es.store import migrate
from ise_es.store.base import NewEvent
from ise_es.store.sql import open_store

EVENTS_PER_STREAM = 60
BATCH = 10
TEXT = ("total 48\ndrwxr-xr-x 2 agent agent 4096 Mar 26 21:29 src\n" * 10)[:290]


def payload_event(i: int) -> ToolCallFinished:
    return ToolCallFinished(call_id=f"call_{i:024x}", tool="exec", result_text=TEXT, exit_code=0)


def streams_for(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


# ---------------------------------------------------------------------------- contestants


def ise_es_writer(url: str, stream_ids: list[str]) -> None:
    store = open_store(url)
    events = [payload_event(i) for i in range(EVENTS_PER_STREAM)]
    for sid in stream_ids:
        version = 0
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            store.append(f"session-{sid}", [NewEvent(e) for e in events[b : b + BATCH]], version)
            version += BATCH
    store.close()


def wait_for_horizon(url: str, total: int, timeout: float = 120) -> None:
    """Wait until every event is below the catch-up horizon.

    The horizon is the oldest transaction still running anywhere in the cluster, so a long
    transaction in another database (someone else's tests on this server) holds our reader
    back, by design (see ise_es/store/sql.py). The read is timed once nothing holds it back:
    it measures reading, not waiting for strangers.
    """
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM events WHERE txid < pg_snapshot_xmin(pg_current_snapshot())"
            ).fetchone()
            if row is not None and row[0] >= total:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"catch-up horizon still held back after {timeout:.0f} s")
            time.sleep(0.05)


def ise_es_reader(url: str) -> int:
    store = open_store(url)
    n = sum(1 for _ in store.iter_all(batch=1000))
    store.close()
    return n


def _es_payload() -> bytes:
    from ise_es.events import encode_payload

    return encode_payload(payload_event(0))


def es_sqlite_writer(path: str, stream_ids: list[str]) -> None:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    recorder = SQLiteApplicationRecorder(SQLiteDatastore(db_name=path))
    state = _es_payload()
    for sid in stream_ids:
        oid = uuid.UUID(sid)
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            recorder.insert_events(
                [StoredEvent(oid, v + 1, "bench:Event", state) for v in range(b, b + BATCH)]
            )


def es_sqlite_reader(path: str) -> int:
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    recorder = SQLiteApplicationRecorder(SQLiteDatastore(db_name=path))
    n, start = 0, 1
    while True:
        page = recorder.select_notifications(start, 1000)
        n += len(page)
        if len(page) < 1000:
            return n
        start = page[-1].id + 1


def _es_pg(dsn: dict[str, str]) -> object:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(
        dsn["dbname"], dsn["host"], dsn["port"], dsn["user"], dsn["password"]
    )
    return PostgresApplicationRecorder(datastore)


def es_pg_writer(dsn: dict[str, str], stream_ids: list[str]) -> None:
    from eventsourcing.persistence import StoredEvent

    recorder = _es_pg(dsn)
    state = _es_payload()
    for sid in stream_ids:
        oid = uuid.UUID(sid)
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            recorder.insert_events(  # type: ignore[attr-defined]
                [StoredEvent(oid, v + 1, "bench:Event", state) for v in range(b, b + BATCH)]
            )


def es_pg_reader(dsn: dict[str, str]) -> int:
    recorder = _es_pg(dsn)
    n, start = 0, 1
    while True:
        page = recorder.select_notifications(start, 1000)  # type: ignore[attr-defined]
        n += len(page)
        if len(page) < 1000:
            return n
        start = page[-1].id + 1


RAW_COLUMNS = "event_id, stream_id, version, type, schema_version, recorded_at, payload, hash"
RAW_TABLE = (
    "CREATE TABLE raw_events (position {pk}, event_id TEXT, stream_id TEXT, version INTEGER, "
    "type TEXT, schema_version SMALLINT, recorded_at {real}, payload TEXT, hash TEXT)"
)


def raw_rows(sid: str, first: int) -> list[tuple[object, ...]]:
    """The rows ise-es writes for one batch (same columns and sizes), minus all the work:
    the id and hash are fixed strings of the right length."""
    event_id, digest, now = uuid.UUID(sid).hex, "0" * 64, time.time()
    payload = _es_payload().decode()
    return [
        (event_id, f"session-{sid}", v + 1, "tool_call_finished", 1, now, payload, digest)
        for v in range(first, first + BATCH)
    ]


def raw_sqlite_writer(path: str, stream_ids: list[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    # One multi-row INSERT per batch, as ise-es does on SQLite (cheaper than executemany).
    sql = f"INSERT INTO raw_events ({RAW_COLUMNS}) VALUES " + ", ".join(
        ["(?, ?, ?, ?, ?, ?, ?, ?)"] * BATCH
    )
    for sid in stream_ids:
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            conn.execute("BEGIN")
            conn.execute(sql, [value for row in raw_rows(sid, b) for value in row])
            conn.execute("COMMIT")
    conn.close()


def raw_pg_writer(url: str, stream_ids: list[str]) -> None:
    sql = f"INSERT INTO raw_events ({RAW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    with psycopg.connect(url) as conn:
        for sid in stream_ids:
            for b in range(0, EVENTS_PER_STREAM, BATCH):
                # executemany pipelines the rows: one round trip per batch.
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, raw_rows(sid, b))


# ---------------------------------------------------------------------------- harness


def _written_bytes() -> int:
    """Bytes this process has caused to be sent to storage (Linux /proc/self/io; 0 elsewhere):
    WAL frames and checkpoints on SQLite, nothing on PostgreSQL (the server writes)."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("write_bytes"))
    except (OSError, StopIteration):
        return 0


def _measured(target: Callable[..., None], arg: object, share: list[str], out: Any) -> None:
    before = _written_bytes()
    target(arg, share)
    out.put(_written_bytes() - before)


def run_writers(
    target: Callable[..., None], arg: object, stream_ids: list[str], writers: int
) -> tuple[float, int]:
    """Wall-clock seconds for `writers` processes to write their share of the streams, and
    the bytes they wrote to storage."""
    ctx = mp.get_context("fork")
    shares = [stream_ids[i::writers] for i in range(writers)]
    out = ctx.SimpleQueue()
    procs = [ctx.Process(target=_measured, args=(target, arg, share, out)) for share in shares]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{target.__name__} failed with exit code {p.exitcode}")
    seconds = time.perf_counter() - start
    return seconds, sum(out.get() for _ in procs)


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
    """One appender: a writer function, its target, how many processes share the streams."""

    def __init__(self, name: str, writer: Callable[..., None], target: object, procs: int) -> None:
        self.name, self.writer, self.target, self.procs = name, writer, target, procs
        self.seconds = 0.0
        self.written = 0


class Reader:
    def __init__(self, name: str, read: Callable[[], int], before: Callable[[], None]) -> None:
        self.name, self.read, self.before = name, read, before


def sqlite_setup(tmp: Path) -> tuple[list[Contestant], list[Reader]]:
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
        Contestant("ise-es sqlite append (1 writer)", ise_es_writer, url, 1),
        Contestant("eventsourcing sqlite append", es_sqlite_writer, es_path, 1),
        Contestant("raw floor sqlite", raw_sqlite_writer, raw_path, 1),
    ]
    readers = [
        Reader("ise-es sqlite read_all", lambda: ise_es_reader(url), lambda: None),
        Reader("eventsourcing sqlite read", lambda: es_sqlite_reader(es_path), lambda: None),
    ]
    return contestants, readers


def postgres_setup(pg: PgServer, total: int) -> tuple[list[Contestant], list[Reader]]:
    url, url4 = pg.fresh("ise1"), pg.fresh("ise4")
    migrate.upgrade(url)
    migrate.upgrade(url4)
    es_dsn = dsn_of(pg.fresh("es"))
    _es_pg(es_dsn).create_table()  # type: ignore[attr-defined]
    raw_url = pg.fresh("raw")
    with psycopg.connect(raw_url, autocommit=True) as c:
        c.execute(RAW_TABLE.format(pk="BIGSERIAL PRIMARY KEY", real="DOUBLE PRECISION"))
    contestants = [
        Contestant("ise-es postgres append (1 writer)", ise_es_writer, url, 1),
        Contestant("ise-es postgres append (4 writers)", ise_es_writer, url4, 4),
        Contestant("eventsourcing postgres append", es_pg_writer, es_dsn, 1),
        Contestant("raw floor postgres", raw_pg_writer, raw_url, 1),
    ]
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
            seconds, written = run_writers(c.writer, c.target, ids[start : start + size], c.procs)
            c.seconds += seconds
            c.written += written
    results = {c.name: total / c.seconds for c in contestants}
    appends = total // BATCH
    for c in contestants:
        if c.written:
            WRITTEN[c.name] = c.written / appends
    for r in readers:
        r.before()
    for _ in range(read_rounds):
        for r in readers:
            n, secs = timed(r.read)
            assert n == total, (r.name, n)
            results[r.name] = max(results.get(r.name, 0.0), n / secs)
    return results


WRITTEN: dict[str, float] = {}
"""Bytes sent to storage per append (one batch of BATCH events), per SQLite contestant."""

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


def main() -> None:
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
    args = parser.parse_args()
    ids = streams_for(args.streams)
    total = args.streams * EVENTS_PER_STREAM
    pg = PgServer(args.pg)
    print(
        f"workload: {args.streams} streams x {EVENTS_PER_STREAM} events, batches of {BATCH}, "
        f"~{len(_es_payload())}-byte payloads ({total} events); appends interleaved in "
        f"{args.segments} segments, reads best of {args.read_rounds}"
    )
    print(
        "durability: SQLite WAL synchronous=FULL (every commit fsynced) for all three; "
        "PostgreSQL synchronous_commit=on for all three"
    )
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)\n")
    best: dict[str, float] = {}
    try:
        if args.only != "postgres":
            with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
                contestants, readers = sqlite_setup(Path(tmp))
                best.update(run(contestants, readers, ids, total, args.segments, args.read_rounds))
        if args.only != "sqlite":
            contestants, readers = postgres_setup(pg, total)
            best.update(run(contestants, readers, ids, total, args.segments, args.read_rounds))
    finally:
        pg.drop_all()

    width = max(map(len, best))
    for name, value in best.items():
        print(f"{name:<{width}}  {value:>10,.0f} ev/s")
    for name, per_append in WRITTEN.items():
        print(f"{name:<{width}}  {per_append / 1024:>7.1f} KiB written to storage per append")
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}\n")
    for label, num, den, target in RATIOS:
        if num not in best or den not in best:
            continue
        ratio = best[num] / best[den]
        verdict = "" if not target else ("  ok" if ratio >= target else f"  BELOW target {target}x")
        print(f"{label:<{width}}  {ratio:>9.2f}x{verdict}")


if __name__ == "__main__":
    main()
