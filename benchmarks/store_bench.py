"""Event store throughput: ise-es against the eventsourcing library and a raw-INSERT floor.

Workload (the same for every contestant): STREAMS streams x 60 events, appended in batches of 10
(one tool call's worth) with ~600-byte payloads, then read back in global order.

Durability is the same everywhere: SQLite in WAL mode with synchronous=FULL (eventsourcing
leaves SQLite's default, FULL; we check it), PostgreSQL with synchronous_commit=on (the
server default). Writers are processes, not threads.

    .venv/bin/python benchmarks/store_bench.py [--streams 2000] [--pg postgresql://...]
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


RAW_SQL = "INSERT INTO raw_events (stream_id, version, type, recorded_at, payload) VALUES ({p})"


def raw_sqlite_writer(path: str, stream_ids: list[str]) -> None:
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    payload = _es_payload().decode()
    sql = RAW_SQL.format(p="?, ?, ?, ?, ?")
    for sid in stream_ids:
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            conn.execute("BEGIN")
            conn.executemany(
                sql,
                [
                    (sid, v + 1, "tool_call_finished", time.time(), payload)
                    for v in range(b, b + BATCH)
                ],
            )
            conn.execute("COMMIT")
    conn.close()


def raw_pg_writer(url: str, stream_ids: list[str]) -> None:
    payload = _es_payload().decode()
    sql = RAW_SQL.format(p="%s, %s, %s, %s, %s")
    with psycopg.connect(url) as conn:
        for sid in stream_ids:
            for b in range(0, EVENTS_PER_STREAM, BATCH):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        sql,
                        [
                            (sid, v + 1, "tool_call_finished", time.time(), payload)
                            for v in range(b, b + BATCH)
                        ],
                    )


# ---------------------------------------------------------------------------- harness


def run_writers(
    target: Callable[..., None], arg: object, stream_ids: list[str], writers: int
) -> float:
    """Wall-clock seconds for `writers` processes to write their share of the streams."""
    ctx = mp.get_context("fork")
    shares = [stream_ids[i::writers] for i in range(writers)]
    procs = [ctx.Process(target=target, args=(arg, share)) for share in shares]
    start = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"{target.__name__} failed with exit code {p.exitcode}")
    return time.perf_counter() - start


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


def sqlite_round(tmp: Path, ids: list[str], total: int) -> dict[str, float]:
    results: dict[str, float] = {}
    url = f"sqlite:///{tmp / 'ise.db'}"
    migrate.upgrade(url)
    results["ise-es sqlite append (1 writer)"] = total / run_writers(ise_es_writer, url, ids, 1)
    n, secs = timed(lambda: ise_es_reader(url))
    assert n == total, n
    results["ise-es sqlite read_all"] = n / secs

    es_path = str(tmp / "es.db")
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    SQLiteApplicationRecorder(SQLiteDatastore(db_name=es_path)).create_table()
    probe = sqlite3.connect(es_path)
    assert probe.execute("PRAGMA synchronous").fetchone()[0] == 2, "eventsourcing not at FULL"
    assert probe.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "eventsourcing not WAL"
    probe.close()
    results["eventsourcing sqlite append"] = total / run_writers(es_sqlite_writer, es_path, ids, 1)
    n, secs = timed(lambda: es_sqlite_reader(es_path))
    assert n == total, n
    results["eventsourcing sqlite read"] = n / secs

    raw_path = str(tmp / "raw.db")
    with sqlite3.connect(raw_path) as c:
        c.execute(
            "CREATE TABLE raw_events (position INTEGER PRIMARY KEY, stream_id TEXT, "
            "version INTEGER, type TEXT, recorded_at REAL, payload TEXT)"
        )
    results["raw floor sqlite"] = total / run_writers(raw_sqlite_writer, raw_path, ids, 1)
    return results


def postgres_round(pg: PgServer, ids: list[str], total: int) -> dict[str, float]:
    results: dict[str, float] = {}
    url = pg.fresh("ise1")
    migrate.upgrade(url)
    results["ise-es postgres append (1 writer)"] = total / run_writers(ise_es_writer, url, ids, 1)
    n, secs = timed(lambda: ise_es_reader(url))
    assert n == total, n
    results["ise-es postgres read_all"] = n / secs
    url4 = pg.fresh("ise4")
    migrate.upgrade(url4)
    results["ise-es postgres append (4 writers)"] = total / run_writers(ise_es_writer, url4, ids, 4)

    es_url = pg.fresh("es")
    es_dsn = dsn_of(es_url)
    _es_pg(es_dsn).create_table()  # type: ignore[attr-defined]
    results["eventsourcing postgres append"] = total / run_writers(es_pg_writer, es_dsn, ids, 1)
    n, secs = timed(lambda: es_pg_reader(es_dsn))
    assert n == total, n
    results["eventsourcing postgres read"] = n / secs

    raw_url = pg.fresh("raw")
    with psycopg.connect(raw_url, autocommit=True) as c:
        c.execute(
            "CREATE TABLE raw_events (position BIGSERIAL PRIMARY KEY, stream_id TEXT, "
            "version INTEGER, type TEXT, recorded_at DOUBLE PRECISION, payload TEXT)"
        )
    results["raw floor postgres"] = total / run_writers(raw_pg_writer, raw_url, ids, 1)
    pg.drop_all()
    return results


RATIOS = [
    # (label, numerator, denominator, target; 0 = shown for information)
    (
        "sqlite append / eventsourcing",
        "ise-es sqlite append (1 writer)",
        "eventsourcing sqlite append",
        1.5,
    ),
    ("sqlite append / raw floor", "ise-es sqlite append (1 writer)", "raw floor sqlite", 0.7),
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
        "--rounds",
        type=int,
        default=1,
        help="run every contestant this many times, interleaved, and keep each one's best "
        "(for a machine busy with other work)",
    )
    parser.add_argument("--only", choices=["sqlite", "postgres"], default=None)
    parser.add_argument(
        "--pg",
        default=os.environ.get("ISE_ES_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432"),
    )
    args = parser.parse_args()
    ids = streams_for(args.streams)
    total = args.streams * EVENTS_PER_STREAM
    rounds: list[dict[str, float]] = []
    pg = PgServer(args.pg)
    print(
        f"workload: {args.streams} streams x {EVENTS_PER_STREAM} events, batches of {BATCH}, "
        f"~{len(_es_payload())}-byte payloads ({total} events); best of {args.rounds} round(s)"
    )
    print(
        "durability: SQLite WAL synchronous=FULL (every commit fsynced) for all three; "
        "PostgreSQL synchronous_commit=on for all three\n"
    )
    try:
        for _ in range(args.rounds):
            results: dict[str, float] = {}
            if args.only != "postgres":
                with tempfile.TemporaryDirectory(prefix="ise-es-bench-") as tmp:
                    results.update(sqlite_round(Path(tmp), ids, total))
            if args.only != "sqlite":
                results.update(postgres_round(pg, ids, total))
            rounds.append(results)
    finally:
        pg.drop_all()

    best = {name: max(r[name] for r in rounds) for name in rounds[0]}
    width = max(map(len, best))
    for name, value in best.items():
        each = (
            "" if len(rounds) == 1 else "   (" + ", ".join(f"{r[name]:,.0f}" for r in rounds) + ")"
        )
        print(f"{name:<{width}}  {value:>10,.0f} ev/s{each}")
    print()
    for label, num, den, target in RATIOS:
        if num not in best or den not in best:
            continue
        ratio = best[num] / best[den]
        verdict = "" if not target else ("  ok" if ratio >= target else f"  BELOW target {target}x")
        print(f"{label:<{width}}  {ratio:>9.2f}x{verdict}")


if __name__ == "__main__":
    main()
