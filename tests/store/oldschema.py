"""Stores as a migration before 0005 left them, written with plain SQL.

Migration tests need data in an old schema; today's store code writes only today's (it needs
the stream numbers of 0005), so the rows and heads are inserted here, hash chain included.
"""

from __future__ import annotations

import sqlalchemy as sa

from ise_es.events import Event, encode_checked
from ise_es.store.base import NewEvent, stream_type_of
from ise_es.store.engine import connect_engines
from ise_es.store.sql import chain_hash

INSERT_EVENT = sa.text(
    "INSERT INTO events (event_id, stream_id, version, type, schema_version, recorded_at, "
    "payload, hash) VALUES (:event_id, :stream_id, :version, :type, :schema_version, "
    ":recorded_at, :payload, :hash)"
)
INSERT_HEAD = sa.text(
    "INSERT INTO streams (stream_id, stream_type, version, head_hash, created_at, updated_at) "
    "VALUES (:s, :t, :v, :h, 1000.0, 1000.0)"
)


def write_streams(url: str, plan: dict[str, list[Event | NewEvent]]) -> None:
    """Append each stream's events (ids `<stream>:<version>` unless given), in plan order."""
    engines = connect_engines(url)
    try:
        with engines.write.begin() as conn:
            for stream_id, items in plan.items():
                previous = ""
                for version, item in enumerate(items, 1):
                    if isinstance(item, NewEvent):
                        event_id, data = item.event_id, item.data
                    else:
                        event_id, data = f"{stream_id}:{version}", item
                    tag, schema_version, payload = encode_checked(data)
                    envelope = {
                        "stream_id": stream_id,
                        "version": version,
                        "event_id": event_id,
                        "schema_version": schema_version,
                        "recorded_at": 1000.0 + version,
                    }
                    # The chain as appends.chain lays it out (a test checks they agree).
                    previous = chain_hash(
                        previous,
                        stream_id=stream_id,
                        version=version,
                        event_id=event_id,
                        event_type=tag,
                        schema_version=schema_version,
                        recorded_at=1000.0 + version,
                        payload=payload,
                    )
                    conn.execute(
                        INSERT_EVENT,
                        {**envelope, "type": tag, "payload": payload.decode(), "hash": previous},
                    )
                head = {"s": stream_id, "t": stream_type_of(stream_id), "v": len(items)}
                conn.execute(INSERT_HEAD, {**head, "h": previous})
    finally:
        engines.dispose()
