"""A small pool of DBAPI connections for the store's hot paths.

SQLAlchemy's pool does more per checkout than an append does (events, reset-on-return, the
connection record); this one is a list used as a stack. `list.pop` and `list.append` are atomic
in CPython, so checkout and return take no lock, and each connection is used by one thread at a
time. After a fork the child never touches the parent's connections (a PostgreSQL socket shared
by two processes corrupts both sessions): it drops them without closing and opens its own.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from typing import Any

__all__ = ["ConnectionPool"]


class ConnectionPool:
    def __init__(self, connect: Callable[[], Any], *, keep: int = 8) -> None:
        self._connect = connect
        self._keep = keep
        self._idle: list[Any] = []
        self._pid = os.getpid()
        self._inherited: list[Any] = []
        self._closed = False

    def get(self) -> Any:
        """A connection for this thread's exclusive use until `put` back."""
        if self._pid != os.getpid():
            self._forget_parents()
        try:
            return self._idle.pop()
        except IndexError:
            return self._connect()

    def put(self, conn: Any) -> None:
        """Return a connection; one left broken or inside a transaction is closed, not reused."""
        if self._closed or len(self._idle) >= self._keep or not _reusable(conn):
            _close_quietly(conn)
            return
        self._idle.append(conn)

    def close(self) -> None:
        self._closed = True
        while self._idle:
            _close_quietly(self._idle.pop())

    def _forget_parents(self) -> None:
        # Kept referenced, never closed: closing (or garbage-collecting) a psycopg connection
        # sends a Terminate on the socket the parent still uses.
        self._inherited.extend(self._idle)
        self._idle = []
        self._pid = os.getpid()


def _reusable(conn: Any) -> bool:
    if isinstance(conn, sqlite3.Connection):
        return not conn.in_transaction
    from psycopg.pq import TransactionStatus  # imported already: conn is a psycopg connection

    return not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE


def _close_quietly(conn: Any) -> None:
    # Closing a broken connection may fail; it is gone either way.
    with contextlib.suppress(Exception):
        conn.close()
