"""Event rows (the store's EVENT_COLUMNS, _sql.py) decoded into StoredEvents."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from ise_es.events import EVENT_TYPES, Event, decode_payload
from ise_es.store.base import StoredEvent

__all__ = ["CURRENT_DECODERS", "stored_events"]

CURRENT_DECODERS: dict[tuple[str, int], Callable[[str], Event]] = {
    (tag, cls.schema_version): msgspec.json.Decoder(cls).decode  # type: ignore[misc]
    for tag, cls in EVENT_TYPES.items()
}
"""Decoders for payloads at their type's current schema version, looked up once per row
instead of going through decode_payload's checks; anything else takes decode_payload."""


def stored_events(rows: Iterable[Sequence[Any]]) -> list[StoredEvent]:
    out: list[StoredEvent] = []
    append = out.append
    current = CURRENT_DECODERS.get
    for (
        position,
        stream_id,
        version,
        event_id,
        tag,
        schema_version,
        recorded_at,
        payload,
        digest,
    ) in rows:
        decode = current((tag, schema_version))
        try:
            data = decode(payload) if decode else decode_payload(tag, schema_version, payload)
        except (msgspec.ValidationError, msgspec.DecodeError):
            # decode_payload raises the InvalidEvent naming the type and version.
            data = decode_payload(tag, schema_version, payload)
        append(
            StoredEvent(
                position=position,
                stream_id=stream_id,
                version=version,
                event_id=event_id,
                type=tag,
                schema_version=schema_version,
                recorded_at=recorded_at,
                data=data,
                hash=digest,
            )
        )
    return out
