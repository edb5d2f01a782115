"""Programs the concurrency tests run as real processes: `python -m tests.store.procs VERB ...`."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from ise_es.errors import ConcurrencyError
from ise_es.events import UserTurn
from ise_es.store.base import NewEvent
from ise_es.store.sql import encode_events, open_store


def write(url: str, stream: str, batches: int, size: int, writer: str) -> None:
    """Append `batches` batches to `stream`, retrying on conflicts (others write it too)."""
    store = open_store(url)
    for b in range(batches):
        batch = [
            NewEvent(
                UserTurn(turn=i, text=f"{writer} batch {b} event {i}"), event_id=f"{writer}-{b}-{i}"
            )
            for i in range(size)
        ]
        while True:
            head = store.streams(stream)
            version = head[0].version if head and head[0].stream_id == stream else 0
            try:
                store.append(stream, batch, version)
                break
            except ConcurrencyError:
                time.sleep(0.001)
    store.close()


def read(url: str, out: str, stop_file: str) -> None:
    """Catch-up reader: poll read_all with a cursor until told to stop and nothing is new."""
    store = open_store(url)
    after, seen = 0, []
    while True:
        stopping = os.path.exists(stop_file)
        page = store.read_all(after, 500)
        for event in page:
            seen.append([event.position, event.stream_id, event.version, event.event_id])
            after = event.position
        if not page:
            if stopping:
                break
            time.sleep(0.005)
    with open(out, "w") as f:
        json.dump(seen, f)
    store.close()


def hold(url: str, stream: str, seconds: float, ready_file: str) -> None:
    """Append inside a transaction kept open for `seconds` (a slow writer)."""
    store = open_store(url)
    with store._engines.write.begin() as conn:
        slow = encode_events([UserTurn(turn=1, text="slow writer")])
        store._appender._append_in(conn.connection.driver_connection, stream, slow, 0, [], None)
        open(ready_file, "w").close()
        time.sleep(float(seconds))
    store.close()


def crash(url: str, stream: str, version: str, ready_file: str) -> None:
    """Write a big append and die by SIGKILL before it commits."""
    store = open_store(url)
    events = encode_events([UserTurn(turn=i, text="x" * 500) for i in range(200)])
    with store._engines.write.begin() as conn:
        blob_rows = store._blobs.rows([os.urandom(4096)])
        store._appender._append_in(
            conn.connection.driver_connection, stream, events, int(version), blob_rows, None
        )
        open(ready_file, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    verb, *args = sys.argv[1:]
    {"write": write, "read": read, "hold": hold, "crash": crash}[verb](  # type: ignore[operator]
        *[int(a) if a.isdigit() and verb == "write" else a for a in args]
    )
