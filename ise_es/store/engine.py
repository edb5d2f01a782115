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

The engines are made when first used, not when the store opens: importing SQLAlchemy costs
about 0.3 s, more than the rest of `ise-es sessions list`, whose reads (and the revision check)
run on the raw connections alone. A plain `sqlite:///PATH` URL is therefore parsed here as
SQLAlchemy would parse it (`sqlite_file`), and its raw connections opened with sqlite3 directly
with the arguments SQLAlchemy's pysqlite dialect would pass; any other URL (PostgreSQL, a query
string) goes through SQLAlchemy as before.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any

from ise_es.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["Engines", "check_sqlite_file", "connect_engines", "normalize_url", "sqlite_file"]

SQLITE_BUSY_TIMEOUT_MS = 60_000
PG_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000


_PLAIN_SQLITE = re.compile(r"sqlite(?:\+pysqlite)?:///([^?]*)")


def sqlite_file(url: str) -> str | None:
    """The file a plain `sqlite:///PATH` URL names (percent-decoded, as SQLAlchemy's make_url
    decodes it), found without importing SQLAlchemy; None for every other URL (PostgreSQL, a
    query string, no file), which `normalize_url` parses and judges."""
    match = _PLAIN_SQLITE.fullmatch(url)
    if match is None:
        return None
    path = urllib.parse.unquote(match.group(1))
    return path if path and path != ":memory:" else None


def normalize_url(url: str) -> sa.URL:
    """Parse a store URL, choosing our drivers.

    Raises:
        ConfigError: not a URL, or not SQLite/PostgreSQL.
    """
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

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
    """A write engine and a read engine (the same one on PostgreSQL), made when first used
    (see the module docstring), and the raw connections of the store's hot paths."""

    def __init__(self, url: str, dialect: str, *, plain_sqlite_file: str | None = None) -> None:
        self.url = url
        self.dialect = dialect
        """sqlite | postgresql"""
        self._plain_file = plain_sqlite_file
        self._connect_args = (
            _SQLITE_CONNECT_ARGS if dialect == "sqlite" else _postgres_connect_args()
        )
        self._made: tuple[sa.Engine, sa.Engine] | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def write(self) -> sa.Engine:
        return self._engines()[0]

    @property
    def read(self) -> sa.Engine:
        return self._engines()[1]

    def _engines(self) -> tuple[sa.Engine, sa.Engine]:
        made = self._made
        if made is None:
            with self._lock:
                if self._made is None:
                    self._made = _make_engines(normalize_url(self.url), self._connect_args)
                made = self._made
        return made

    def sqlite_file(self) -> str:
        """The SQLite store's file as its URL names it."""
        if self._plain_file is not None:
            return self._plain_file
        return normalize_url(self.url).database or ""

    def raw_connect(self) -> Any:
        """A new DBAPI connection (sqlite3 / psycopg) configured like the engines' connections,
        in autocommit mode. The caller owns it and closes it."""
        if self._plain_file is not None:
            # What SQLAlchemy's pysqlite dialect passes for this URL, plus our connect args.
            conn = sqlite3.connect(os.path.abspath(self._plain_file), **self._connect_args)
            configure_sqlite(conn)
            return conn
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
        if self._made is None:
            return
        write, read = self._made
        # In a forked child the pooled connections are the parent's: drop, never close them.
        close = os.getpid() == self._pid
        write.dispose(close=close)
        if read is not write:
            read.dispose(close=close)


def _fork_safe(engine: sa.Engine) -> None:
    """Never hand a forked child a connection its parent opened (SQLAlchemy's own recipe): a
    PostgreSQL socket used by two processes corrupts both sessions."""
    import sqlalchemy as sa

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
    import sqlalchemy as sa

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


def connect_engines(url: str, *, check_file: bool = True) -> Engines:
    """Engines for a store URL (nothing is connected or made yet; an SQLite file's header is
    read unless `check_file` is false: SqlEventStore, whose first connection finds a foreign
    file anyway, runs `check_sqlite_file` only when that connection fails, saving a connection
    of its own (~2 ms) on every open).

    Raises:
        ConfigError: a malformed or unsupported URL.
        StoreUnavailable: an existing SQLite path that is not an SQLite database.
    """
    plain = sqlite_file(url)
    if plain is not None:
        if check_file:
            check_sqlite_file(plain, url)
        return Engines(url, "sqlite", plain_sqlite_file=plain)
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        if check_file:
            check_sqlite_file(parsed.database or "", url)
        return Engines(url, "sqlite")
    return Engines(url, "postgresql")


def _postgres_connect_args() -> dict[str, Any]:
    return {
        "options": f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_TIMEOUT_MS}",
        "connect_timeout": 10,
    }


def _make_engines(parsed: sa.URL, connect_args: dict[str, Any]) -> tuple[sa.Engine, sa.Engine]:
    """(write engine, read engine) for a URL `normalize_url` parsed."""
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, immediate=True), _sqlite_engine(parsed, immediate=False)
    import sqlalchemy as sa

    from ise_es.store.schema import register_postgresql_types

    register_postgresql_types()
    engine = sa.create_engine(
        parsed, pool_size=8, max_overflow=8, pool_pre_ping=False, connect_args=dict(connect_args)
    )
    _fork_safe(engine)
    return engine, engine


def describe_unavailable(url: str, error: BaseException) -> StoreUnavailable:
    """One line saying which database could not be reached, without the password."""
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True) if "://" in url else url
    reason = str(getattr(error, "orig", error)).strip().splitlines()[0] if str(error) else ""
    return StoreUnavailable(f"cannot open database {shown}: {reason}")
