"""The contestants of store_bench.py: writers and readers of ise-es, eventsourcing, the raw-INSERT
floor and the --costs ladder, each appending the same streams in batches of BATCH events.

A writer is `writer(target, stream_ids, tick)`: it appends every stream of its share and calls
`tick()` after each append (store_bench's WAL counter). Readers return the number of events.
"""

from __future__ import annotations

import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ise_es.events import ToolCallFinished
from ise_es.store.base import NewEvent
from ise_es.store.sql import open_store

Tick = Callable[[], None]
"""Called by a writer after each append (the WAL counter's hook)."""

EVENTS_PER_STREAM = 60
BATCH = 10
TEXT = ("total 48\ndrwxr-xr-x 2 agent agent 4096 Mar 26 21:29 src\n" * 10)[:290]


def payload_event(i: int) -> ToolCallFinished:
    return ToolCallFinished(call_id=f"call_{i:024x}", tool="exec", result_text=TEXT, exit_code=0)


def streams_for(n: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1)) for i in range(n)]


# ---------------------------------------------------------------------------- contestants


def ise_es_writer(url: str, stream_ids: list[str], tick: Tick) -> None:
    store = open_store(url)
    events = [payload_event(i) for i in range(EVENTS_PER_STREAM)]
    for sid in stream_ids:
        version = 0
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            store.append(f"session-{sid}", [NewEvent(e) for e in events[b : b + BATCH]], version)
            tick()
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


def es_payload() -> bytes:
    from ise_es.events import encode_payload

    return encode_payload(payload_event(0))


def es_sqlite_writer(path: str, stream_ids: list[str], tick: Tick) -> None:
    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    recorder = SQLiteApplicationRecorder(SQLiteDatastore(db_name=path))
    state = es_payload()
    for sid in stream_ids:
        oid = uuid.UUID(sid)
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            recorder.insert_events(
                [StoredEvent(oid, v + 1, "bench:Event", state) for v in range(b, b + BATCH)]
            )
            tick()


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


def es_pg(dsn: dict[str, str]) -> object:
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    datastore = PostgresDatastore(
        dsn["dbname"], dsn["host"], dsn["port"], dsn["user"], dsn["password"]
    )
    return PostgresApplicationRecorder(datastore)


def es_pg_writer(dsn: dict[str, str], stream_ids: list[str], tick: Tick) -> None:
    from eventsourcing.persistence import StoredEvent

    recorder = es_pg(dsn)
    state = es_payload()
    for sid in stream_ids:
        oid = uuid.UUID(sid)
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            recorder.insert_events(  # type: ignore[attr-defined]
                [StoredEvent(oid, v + 1, "bench:Event", state) for v in range(b, b + BATCH)]
            )


def es_pg_reader(dsn: dict[str, str]) -> int:
    recorder = es_pg(dsn)
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
    payload = es_payload().decode()
    return [
        (event_id, f"session-{sid}", v + 1, "tool_call_finished", 1, now, payload, digest)
        for v in range(first, first + BATCH)
    ]


def raw_sqlite_writer(path: str, stream_ids: list[str], tick: Tick) -> None:
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
            tick()
    conn.close()


# What each of ise-es's guarantees costs, in bare SQL on the floor's connection (`--costs`):
# the floor's table plus, level by level, the unique (stream_no, version) index, the stream
# head row moved by a conditional UPDATE, then the hash chain and the payload check computed
# by ise-es's own functions. ise-es itself adds its API (pool, head cache, error handling).
LADDER = [
    "floor + stream index",
    "floor + stream index + head row",
    "floor + stream index + head row + chain/checks",
]
LADDER_EVENTS = [payload_event(i) for i in range(EVENTS_PER_STREAM)]
LADDER_HEADS = (
    "CREATE TABLE raw_heads (stream_id TEXT PRIMARY KEY, stream_type TEXT, version INTEGER, "
    "head_hash TEXT, created_at REAL, updated_at REAL, stream_no INTEGER UNIQUE) WITHOUT ROWID"
)


def ladder_setup(path: str) -> None:
    with sqlite3.connect(path) as c:
        c.execute(RAW_TABLE.format(pk="INTEGER PRIMARY KEY", real="REAL"))
        c.execute("ALTER TABLE raw_events ADD COLUMN stream_no INTEGER")
        c.execute("CREATE UNIQUE INDEX raw_stream ON raw_events (stream_no, version)")
        c.execute(LADDER_HEADS)
        c.execute("CREATE INDEX raw_heads_type ON raw_heads (stream_type, stream_id)")


def _ladder_rows(
    sid: str, first: int, previous: str, number: int, checked: bool
) -> tuple[list[Any], str]:
    if not checked:
        rows = [value for row in raw_rows(sid, first) for value in (*row, number)]
        return rows, "0" * 64
    from ise_es.store.appends import chain, encode_events

    batch = [NewEvent(e) for e in LADDER_EVENTS[first : first + BATCH]]
    head = (first, previous, number)
    rows, _, digest = chain(
        f"session-{sid}", head, time.time(), encode_events(batch), postgres=False
    )
    return rows, digest


def ladder_writer(arg: tuple[str, int], stream_ids: list[str], tick: Tick) -> None:
    path, level = arg
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    sql = f"INSERT INTO raw_events ({RAW_COLUMNS}, stream_no) VALUES " + ", ".join(
        ["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * BATCH
    )
    (number,) = conn.execute("SELECT coalesce(max(stream_no), 0) FROM raw_events").fetchone()
    for sid in stream_ids:
        number += 1
        previous = ""
        for b in range(0, EVENTS_PER_STREAM, BATCH):
            conn.execute("BEGIN IMMEDIATE")
            rows, digest = _ladder_rows(sid, b, previous, number, checked=level >= 2)
            now = time.time()
            if level >= 1 and b == 0:
                conn.execute(
                    "INSERT INTO raw_heads VALUES (?, 'session', ?, ?, ?, ?, ?)",
                    (f"session-{sid}", BATCH, digest, now, now, number),
                )
            elif level >= 1:
                moved = conn.execute(
                    "UPDATE raw_heads SET version = ?, head_hash = ?, updated_at = ? "
                    "WHERE stream_id = ? AND version = ? AND head_hash = ?",
                    (b + BATCH, digest, now, f"session-{sid}", b, previous),
                ).rowcount
                assert moved == 1
            conn.execute(sql, rows)
            conn.execute("COMMIT")
            previous = digest
            tick()
    conn.close()


def raw_pg_writer(url: str, stream_ids: list[str], tick: Tick) -> None:
    sql = f"INSERT INTO raw_events ({RAW_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
    with psycopg.connect(url) as conn:
        for sid in stream_ids:
            for b in range(0, EVENTS_PER_STREAM, BATCH):
                # executemany pipelines the rows: one round trip per batch.
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, raw_rows(sid, b))
