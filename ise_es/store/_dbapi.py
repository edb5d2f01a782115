"""One statement at a time on the store's pooled DBAPI connections (sql.py says why the hot
paths skip SQLAlchemy), with the driver's errors turned into ours."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Sequence
from typing import Any

from ise_es.store._pool import ConnectionPool
from ise_es.store.engine import describe_unavailable

__all__ = ["Raw", "driver_errors"]


def driver_errors(name: str) -> tuple[type[Exception], ...]:
    """sqlite3's and psycopg's DBAPI error class `name`. Called in `except` clauses, which are
    evaluated only when an exception is on its way: psycopg is not imported for a SQLite store
    (~0.1 s of `sessions list`), and while it is not imported none of its errors can be."""
    psycopg = sys.modules.get("psycopg")
    ours: type[Exception] = getattr(sqlite3, name)
    return (ours, getattr(psycopg, name)) if psycopg is not None else (ours,)


class Raw:
    """Statements in autocommit mode (each is its own transaction and snapshot)."""

    def __init__(self, pool: ConnectionPool, *, postgres: bool, url: str) -> None:
        self.pool = pool
        self.postgres = postgres
        self.url = url

    def query(self, statement: str, params: Sequence[Any]) -> list[Any]:
        """Rows of one read statement.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        try:
            conn = self.pool.get()
            try:
                if self.postgres:
                    # Binary results: the server skips formatting numbers (float8 to shortest
                    # exact text is not cheap) and the client skips parsing them.
                    cursor = conn.execute(statement, params, prepare=True, binary=True)
                    return cursor.fetchall()  # type: ignore[no-any-return]
                return conn.execute(statement, params).fetchall()  # type: ignore[no-any-return]
            finally:
                self.pool.put(conn)
        except driver_errors("OperationalError") as e:
            raise describe_unavailable(self.url, e) from e

    def execute(self, statement: str, params: Sequence[Any]) -> None:
        """One write statement.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        try:
            conn = self.pool.get()
            try:
                conn.execute(statement, params)
            finally:
                self.pool.put(conn)
        except driver_errors("OperationalError") as e:
            raise describe_unavailable(self.url, e) from e
