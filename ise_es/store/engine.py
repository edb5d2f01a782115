"""Database URLs and engines, with each dialect's settings chosen deliberately.

SQLite: WAL (readers never block the writer), a busy timeout, synchronous=FULL (every commit
is fsynced, the same durability as PostgreSQL's default synchronous_commit=on), and write
transactions opened with BEGIN IMMEDIATE. The sqlite3 driver's own deferred BEGIN takes the
write lock only at the first write; a transaction that read first then fails at once with
"database is locked" instead of waiting for the lock. So the driver's transaction handling is
switched off (isolation_level=None) and the engine's "begin" hook issues BEGIN IMMEDIATE on the
write engine and a plain (deferred) BEGIN on a separate read engine, keeping reads off the lock.

PostgreSQL: psycopg 3; every session gets a bounded idle_in_transaction_session_timeout, because
an abandoned open transaction holds back every catch-up reader (see sql.py).

Besides the engines (schema checks, migrations, projections, the store's less frequent queries),
`Engines.raw_connect` opens a bare DBAPI connection with exactly the same settings for the store's
hot paths (sql.py says why they skip SQLAlchemy): SQLite in the driver's autocommit mode, the
store issuing BEGIN IMMEDIATE itself; PostgreSQL in autocommit, so a single-statement append is
its own transaction (one round trip).
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ise_es.errors import ConfigError, StoreUnavailable

__all__ = ["Engines", "check_sqlite_file", "connect_engines", "normalize_url"]

SQLITE_BUSY_TIMEOUT_MS = 60_000
PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000


def normalize_url(url: str) -> sa.URL:
    """Parse a store URL, choosing our drivers.

    Raises:
        ConfigError: not a URL, or not SQLite/PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as e:
        raise ConfigError(
            f"malformed database URL {url!r}: expected sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
        ) from e
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(
                f"database URL {url!r} has no file: use sqlite:///PATH (the store must be shared "
                "by several connections, which an in-memory database is not)"
            )
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        if not parsed.database:
            raise ConfigError(f"database URL {url!r} names no database")
        return parsed.set(drivername="postgresql+psycopg")
    raise ConfigError(
        f"unsupported database {backend!r} in {url!r}: ise-es stores events in SQLite "
        "(sqlite:///PATH) or PostgreSQL (postgresql://...)"
    )


class Engines:
    """A write engine and a read engine (the same one on PostgreSQL)."""

    def __init__(
        self, write: sa.Engine, read: sa.Engine, connect_args: dict[str, Any] | None = None
    ) -> None:
        self.write = write
        self.read = read
        self.dialect: str = write.dialect.name
        self._connect_args = dict(connect_args or {})
        self._pid = os.getpid()

    def raw_connect(self) -> Any:
        """A new DBAPI connection (sqlite3 / psycopg) configured like the engines' connections,
        in autocommit mode. The caller owns it and closes it."""
        dialect = self.write.dialect
        cargs, cparams = dialect.create_connect_args(self.write.url)
        cparams.update(self._connect_args)
        if self.dialect == "sqlite":
            conn = dialect.connect(*cargs, **cparams)
            configure_sqlite(conn)
            return conn
        cparams["autocommit"] = True
        return dialect.connect(*cargs, **cparams)

    def dispose(self) -> None:
        # In a forked child the pooled connections are the parent's: drop, never close them.
        close = os.getpid() == self._pid
        self.write.dispose(close=close)
        if self.read is not self.write:
            self.read.dispose(close=close)


def _fork_safe(engine: sa.Engine) -> None:
    """Never hand a forked child a connection its parent opened (SQLAlchemy's own recipe): a
    PostgreSQL socket used by two processes corrupts both sessions."""

    @sa.event.listens_for(engine, "connect")
    def _remember_pid(_dbapi_conn: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @sa.event.listens_for(engine, "checkout")
    def _check_pid(_dbapi_conn: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise sa.exc.DisconnectionError("connection opened by the parent process")


def configure_sqlite(dbapi_conn: Any) -> None:
    """Settings every SQLite connection of ours gets (see the module docstring).

    Raises:
        StoreUnavailable: the file has an SQLite header but is not a readable database
            (damaged, encrypted): the first PRAGMA is where the driver finds out.
    """
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError:
        raise  # locked, cannot open...: translated by the caller, which knows the URL
    except sqlite3.DatabaseError as e:
        path = next((row[2] for row in cur.execute("PRAGMA database_list")), "")
        raise StoreUnavailable(
            f"cannot open the SQLite store {path}: {e} (a damaged or foreign file, not an "
            "ise-es store): check the --db path"
        ) from e
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=FULL")
    cur.close()


_SQLITE_CONNECT_ARGS: dict[str, Any] = {
    "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
    # Pooled connections move between threads (one thread at a time).
    "check_same_thread": False,
}


def _sqlite_engine(url: sa.URL, *, immediate: bool) -> sa.Engine:
    engine = sa.create_engine(
        url, connect_args=dict(_SQLITE_CONNECT_ARGS), pool_size=8, max_overflow=8
    )

    _fork_safe(engine)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        configure_sqlite(dbapi_conn)

    begin_sql = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(begin_sql)

    return engine


def check_sqlite_file(path: str, url: str) -> None:
    """Refuse an existing file that is not an SQLite database, before the engines see it.

    The driver only finds out at the first statement (our connect hook's PRAGMA), where the
    error surfaces as a page of SQLAlchemy traceback: `--db sqlite:///notes.txt` is an easy
    first-day typo. A missing file is left to the caller (`db upgrade` creates it).

    The check asks SQLite itself, read-only, never `open()`: closing any descriptor of a file
    drops every POSIX lock this process holds on it, SQLite's included, and another process
    could then checkpoint and delete the WAL under this one's open connections. SQLite keeps
    its own descriptors open while a connection of the process still holds locks.

    Raises:
        StoreUnavailable: the file exists and is not an SQLite database.
    """
    if not os.path.isfile(path):
        return  # missing, or not a file: SQLite's own error says what is wrong
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(path)}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        if "not a database" not in str(e):
            return
        raise StoreUnavailable(
            f"cannot open database {url}: {path} is not an ise-es SQLite store (not an SQLite "
            "database file): check the --db path, or give a new file name for `ise-es db "
            "upgrade` to create"
        ) from None
    finally:
        conn.close()


def connect_engines(url: str) -> Engines:
    """Engines for a store URL (nothing is connected yet; an SQLite file's header is read).

    Raises:
        ConfigError: a malformed or unsupported URL.
        StoreUnavailable: an existing SQLite path that is not an SQLite database.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        check_sqlite_file(parsed.database or "", url)
        return Engines(
            _sqlite_engine(parsed, immediate=True),
            _sqlite_engine(parsed, immediate=False),
            _SQLITE_CONNECT_ARGS,
        )
    from ise_es.store.schema import register_postgresql_types

    register_postgresql_types()
    connect_args = {
        "options": f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_TIMEOUT_MS}",
        "connect_timeout": 10,
    }
    engine = sa.create_engine(
        parsed, pool_size=8, max_overflow=8, pool_pre_ping=False, connect_args=connect_args
    )
    _fork_safe(engine)
    return Engines(engine, engine, connect_args)


def describe_unavailable(url: str, error: BaseException) -> StoreUnavailable:
    """One line saying which database could not be reached, without the password."""
    shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error) else ""
    return StoreUnavailable(f"cannot open database {shown}: {reason}")
