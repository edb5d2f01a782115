"""The SQL text of the store's hot paths, written once per dialect (sql.py says why).

Column lists must match ise_es/store/schema.py; the store's tests exercise every statement on
both databases.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

__all__ = ["POSTGRES", "SQLITE", "DialectSql"]

EVENT_COLUMNS = (
    "position, stream_id, version, event_id, type, schema_version, recorded_at, payload, hash"
)
INSERT_COLUMNS = (
    "event_id, stream_id, version, type, schema_version, recorded_at, payload, hash, stream_no"
)
HEAD_COLUMNS = "stream_id, stream_type, version, head_hash, created_at, updated_at"


INSERT_WIDTH = 9
"""Values per row of INSERT_COLUMNS."""
SQLITE_ROWS_PER_INSERT = 500
"""Rows per multi-row INSERT on SQLite (9 x 500 stays far below its 32,766 variables)."""


@functools.lru_cache(maxsize=64)
def sqlite_insert_events(rows: int) -> str:
    """A multi-row INSERT of `rows` events (cached: appends come in a few sizes)."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return f"INSERT INTO events ({INSERT_COLUMNS}) VALUES {values}"


class DialectSql:
    """Statements shared by both dialects, in the driver's parameter style."""

    def __init__(self, p: str) -> None:
        self.p = p
        self.select_head = (
            f"SELECT version, head_hash, stream_no FROM streams WHERE stream_id = {p}"
        )
        # Events are indexed by (stream_no, version) (migration 0005).
        stream = f"stream_no = (SELECT stream_no FROM streams WHERE stream_id = {p})"
        self.select_head_for_update = self.select_head
        self.select_blob = f"SELECT codec, data FROM blobs WHERE digest = {p}"
        self.select_blob_size = f"SELECT size FROM blobs WHERE digest = {p}"
        self.read_stream = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {stream} AND version >= {p} ORDER BY version"
        )
        self.read_stream_to = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {stream} AND version >= {p} "
            f"AND version <= {p} ORDER BY version"
        )
        # Filled in by the subclasses.
        self.insert_head = ""
        self.next_stream_no = ""
        self.last_position = ""  # the last event the catch-up order returns now
        self.update_head = ""
        self.insert_blob = ""
        self.insert_blobs = ""
        self.append: dict[tuple[bool, bool], str] = {}
        self.append_fenced: dict[tuple[bool, bool], str] = {}
        self.fence_held = f"SELECT 1 FROM work_items WHERE item_id = {p} AND lease_token = {p}"
        # Idempotency per stream (store/appends.py): the events a retry expected to write.
        self.select_versions = (
            f"SELECT version, event_id, type, payload FROM events WHERE {stream} "
            f"AND version > {p} AND version <= {p} ORDER BY version"
        )
        self.select_ids_in_stream_prefix = (
            f"SELECT version, event_id, type, payload FROM events WHERE {stream} AND event_id"
        )

    def select_ids_in_stream(self, n: int) -> str:
        """Those of `n` event ids stored in a stream (stream id, then `ids_param`)."""
        raise NotImplementedError

    def ids_param(self, ids: list[str]) -> tuple[Any, ...]:
        raise NotImplementedError

    def catch_up(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None,
        *,
        until: int | None = None,
        part: tuple[int, int] | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        """A page of the log in catch-up order after `after_position`, up to `until` (an
        event's position, included) and only the streams of `part` (index, count): those
        whose number modulo count is index."""
        raise NotImplementedError


class _Sqlite(DialectSql):
    def __init__(self) -> None:
        super().__init__("?")
        self.insert_head = (
            f"INSERT INTO streams ({HEAD_COLUMNS}, stream_no) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (stream_id) DO NOTHING"
        )
        # Under the write lock (BEGIN IMMEDIATE), so no other writer takes the same number.
        self.next_stream_no = "SELECT coalesce(max(stream_no), 0) + 1 FROM streams"
        self.last_position = "SELECT coalesce(max(position), 0) FROM events"
        self.update_head = (
            "UPDATE streams SET version = ?, head_hash = ?, updated_at = ? "
            "WHERE stream_id = ? AND version = ? AND head_hash = ?"
        )
        self.insert_blob = (
            "INSERT INTO blobs (digest, size, codec, data) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (digest) DO NOTHING"
        )

    def select_ids_in_stream(self, n: int) -> str:
        return f"{self.select_ids_in_stream_prefix} IN ({', '.join('?' * n)})"

    def ids_param(self, ids: list[str]) -> tuple[Any, ...]:
        return tuple(ids)

    def catch_up(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None,
        *,
        until: int | None = None,
        part: tuple[int, int] | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        # One writer at a time, rowids assigned under the write lock: position order is commit
        # order (sql.py).
        where = "position > ?"
        params: list[Any] = [after_position]
        if until is not None:
            where += " AND position <= ?"
            params.append(until)
        if types:
            where += f" AND type IN ({', '.join('?' * len(types))})"
            params.extend(types)
        if part is not None:
            where += " AND stream_no % ? = ?"
            params.extend((part[1], part[0]))
        statement = f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY position LIMIT ?"
        return statement, (*params, limit)


# The append in one statement. The arrays go in binary (%b): the text format would escape
# every backslash and quote of every payload with a regular expression on the client.
# Data-modifying CTEs all run to completion whether or not the
# main query reads them; the blob and event inserts select from `head`, so when the
# conditional head update (or the new stream's insert) changes no row nothing at all is
# written, and the statement reports 0 rows.
_PG_HEAD_UPDATE = (
    "UPDATE streams SET version = %s, head_hash = %s, updated_at = %s "
    "WHERE stream_id = %s AND version = %s AND head_hash = %s RETURNING stream_no"
)
_PG_STREAM_NO = "nextval('streams_stream_no_seq')"
_PG_HEAD_INSERT = (
    f"INSERT INTO streams ({HEAD_COLUMNS}, stream_no) "
    f"VALUES (%s, %s, %s, %s, %s, %s, {_PG_STREAM_NO}) "
    "ON CONFLICT (stream_id) DO NOTHING RETURNING stream_no"
)
_PG_FENCE = "fence AS (SELECT 1 FROM work_items WHERE item_id = %s AND lease_token = %s FOR SHARE)"
_PG_HEAD_UPDATE_FENCED = _PG_HEAD_UPDATE.replace(
    " RETURNING", " AND EXISTS (SELECT FROM fence) RETURNING"
)
_PG_HEAD_INSERT_FENCED = (
    f"INSERT INTO streams ({HEAD_COLUMNS}, stream_no) "
    f"SELECT %s::text, %s::text, %s::int4, %s::text, %s::float8, %s::float8, {_PG_STREAM_NO} "
    "WHERE EXISTS (SELECT FROM fence) ON CONFLICT (stream_id) DO NOTHING RETURNING stream_no"
)
_PG_BLOBS_CTE = (
    ", b AS (INSERT INTO blobs (digest, size, codec, data) "
    "SELECT * FROM unnest(%b::text[], %b::int8[], %b::text[], %b::bytea[]) "
    "WHERE EXISTS (SELECT FROM head) ON CONFLICT (digest) DO NOTHING)"
)
# Each event travels as its id plus one packed text "type US schema_version US hash US payload"
# (US = the ASCII unit separator, 0x1f): two arrays to dump per append instead of five, which
# halves the client's parameter encoding. Safe to split because none of the four can contain a
# raw 0x1f: the tag is a fixed name, the version an integer, the hash hex, and JSON escapes
# every control character inside strings (the caller-chosen event id stays separate).
FIELD_SEPARATOR = "\x1f"
_PG_EVENTS = (
    f" INSERT INTO events ({INSERT_COLUMNS}) "
    "SELECT e.event_id, %s, %s::int4 + e.n, split_part(e.packed, E'\\x1f', 1), "
    "split_part(e.packed, E'\\x1f', 2)::int2, %s, split_part(e.packed, E'\\x1f', 4), "
    "split_part(e.packed, E'\\x1f', 3), head.stream_no "
    "FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS e(event_id, packed, n) "
    "CROSS JOIN head ORDER BY e.n"
)


class _Postgres(DialectSql):
    def __init__(self) -> None:
        super().__init__("%s")
        self.select_head_for_update = self.select_head + " FOR UPDATE"
        self.insert_blobs = (
            "INSERT INTO blobs (digest, size, codec, data) "
            "SELECT * FROM unnest(%b::text[], %b::int8[], %b::text[], %b::bytea[]) "
            "ON CONFLICT (digest) DO NOTHING"
        )
        self.append = {
            (new_stream, with_blobs): (
                f"WITH head AS ({_PG_HEAD_INSERT if new_stream else _PG_HEAD_UPDATE})"
                + (_PG_BLOBS_CTE if with_blobs else "")
                + _PG_EVENTS
            )
            for new_stream in (True, False)
            for with_blobs in (True, False)
        }
        # Fenced appends (a work-item lease guards the stream): the head only moves while the
        # lease token is still the item's. FOR SHARE conflicts with the reclaimer's UPDATE of
        # that row, so either the append commits first and the reclaimer sees its events, or
        # the reclaim commits first and the re-checked row no longer matches (store/queue.py).
        self.append_fenced = {
            (new_stream, with_blobs): (
                f"WITH {_PG_FENCE}, head AS "
                f"({_PG_HEAD_INSERT_FENCED if new_stream else _PG_HEAD_UPDATE_FENCED})"
                + (_PG_BLOBS_CTE if with_blobs else "")
                + _PG_EVENTS
            )
            for new_stream in (True, False)
            for with_blobs in (True, False)
        }
        horizon = "txid < pg_snapshot_xmin(pg_current_snapshot())"
        self._horizon = horizon
        self.last_position = (
            f"SELECT position FROM events WHERE {horizon} ORDER BY txid DESC, position DESC LIMIT 1"
        )

    def select_ids_in_stream(self, n: int) -> str:
        return f"{self.select_ids_in_stream_prefix} = ANY(%s::text[])"

    def ids_param(self, ids: list[str]) -> tuple[Any, ...]:
        return (ids,)

    def catch_up(
        self,
        after_position: int,
        limit: int,
        types: Sequence[str] | None,
        *,
        until: int | None = None,
        part: tuple[int, int] | None = None,
    ) -> tuple[str, tuple[Any, ...]]:
        # A position (a checkpoint, `until`) is that of an event already read, or about to be:
        # its txid completes the (txid, position) cursor of the catch-up order.
        where = [self._horizon]
        params: list[Any] = []
        if after_position > 0:
            where.append("(txid, position) > ((SELECT txid FROM events WHERE position = %s), %s)")
            params += (after_position, after_position)
        if until is not None:
            where.append("(txid, position) <= ((SELECT txid FROM events WHERE position = %s), %s)")
            params += (until, until)
        if types:
            where.append("type = ANY(%s::text[])")
            params.append(list(types))
        if part is not None:
            where.append("stream_no %% %s = %s")  # %% is the modulo operator here
            params += (part[1], part[0])
        statement = (
            f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} "
            "ORDER BY txid, position LIMIT %s"
        )
        return statement, (*params, limit)


SQLITE: DialectSql = _Sqlite()
POSTGRES: DialectSql = _Postgres()
