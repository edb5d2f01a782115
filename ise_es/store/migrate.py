"""Schema migrations through Alembic: the only way the store's schema is created or changed.

Opening a store checks its revision (`check_at_head`) without Alembic: importing it costs
about as much as the rest of `ise-es sessions list`, so the check reads the version table and
the revision ids written in migrations/versions itself, and Alembic is imported only by the
`db` commands (and as the fallback when the files cannot be read that simply). On SQLite the
check runs on a raw sqlite3 connection (`check_sqlite_at_head`): opening a SQLite store imports
no SQLAlchemy either (store/engine.py says why).
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from ise_es.errors import SchemaOutOfDate
from ise_es.store.engine import connect_engines, describe_unavailable, normalize_url

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config

__all__ = [
    "check_at_head",
    "check_sqlite_at_head",
    "current",
    "downgrade",
    "head",
    "history",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would mangle '%' in passwords.
    config.set_main_option(
        "sqlalchemy.url", normalize_url(url).render_as_string(False).replace("%", "%%")
    )
    config.attributes["ise_es_url"] = url
    return config


def head() -> str:
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert revision is not None, "migrations/versions holds no revision"
    return revision


_REVISION = re.compile(r"""^revision(?:\s*:\s*str)?\s*=\s*["']([^"']+)["']\s*$""", re.M)
_DOWN = re.compile(r"""^down_revision(?:\s*:[^=]+)?\s*=\s*(?:None|["']([^"']+)["'])\s*$""", re.M)


def file_head() -> str:
    """The newest revision, read from the `revision = "..."` and `down_revision = "..."` lines
    of migrations/versions/*.py without importing Alembic or the scripts. A file it cannot read
    so (a merge revision, a computed id) sends it to Alembic's own answer, `head()`."""
    revisions: set[str] = set()
    downs: set[str] = set()
    # os.scandir, not Path.glob, whose pattern becomes a regular expression compiled anew in
    # every process: a third of this function in a fresh process, ~1 ms of each store open.
    for entry in os.scandir(MIGRATIONS_DIR / "versions"):
        if not entry.name.endswith(".py"):
            continue
        with open(entry.path, encoding="utf-8") as f:
            text = f.read()
        revision, down = _REVISION.findall(text), _DOWN.findall(text)
        if len(revision) != 1 or len(down) != 1:
            return head()
        revisions.add(revision[0])
        if down[0]:
            downs.add(down[0])
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else head()


def _revision_of(conn: sa.Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _stored_revision(conn: sa.Connection) -> str | None:
    """What Alembic's version table says, read with plain SQL (None: no table, or empty)."""
    import sqlalchemy as sa

    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = [r[0] for r in conn.execute(sa.text("SELECT version_num FROM alembic_version"))]
    return ",".join(sorted(rows)) or None


def check_at_head(conn: sa.Connection) -> None:
    """Raises SchemaOutOfDate unless the database is at the newest migration."""
    _compare(_stored_revision(conn))


def _sqlite_stored_revision(conn: sqlite3.Connection) -> str | None:
    """`_stored_revision` on a raw sqlite3 connection."""
    listed = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    if not conn.execute(listed).fetchall():
        return None
    rows = [r[0] for r in conn.execute("SELECT version_num FROM alembic_version")]
    return ",".join(sorted(rows)) or None


def check_sqlite_at_head(conn: sqlite3.Connection) -> None:
    """`check_at_head` on a raw sqlite3 connection (no SQLAlchemy imported).

    Raises:
        SchemaOutOfDate: the database is not at the newest migration.
    """
    _compare(_sqlite_stored_revision(conn))


def _compare(have: str | None) -> None:
    want = file_head()
    if have != want:
        raise SchemaOutOfDate(
            f"database at revision {have or 'none (empty)'}, expected {want}: "
            "run `ise-es db upgrade`"
        )


def _run(url: str, action: str, revision: str) -> None:
    import sqlalchemy as sa
    from alembic import command

    config = alembic_config(url)
    try:
        getattr(command, action)(config, revision)
    except sa.exc.OperationalError as e:
        raise describe_unavailable(url, e) from e


def upgrade(url: str, revision: str = "head") -> None:
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str = "base") -> None:
    _run(url, "downgrade", revision)


def current(url: str) -> str | None:
    import sqlalchemy as sa

    engines = connect_engines(url)
    try:
        with engines.read.connect() as conn:
            return _revision_of(conn)
    except sa.exc.OperationalError as e:
        raise describe_unavailable(url, e) from e
    finally:
        engines.dispose()


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down revision, message), oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    out = []
    for rev in script.walk_revisions():
        down = (
            rev.down_revision
            if isinstance(rev.down_revision, str) or rev.down_revision is None
            else ",".join(rev.down_revision)
        )
        out.append((rev.revision, down, rev.doc or ""))
    return list(reversed(out))
