"""Schema migrations through Alembic: the only way the store's schema is created or changed."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ise_es.errors import SchemaOutOfDate
from ise_es.store.engine import connect_engines, describe_unavailable, normalize_url

__all__ = ["check_at_head", "current", "downgrade", "head", "history", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would mangle '%' in passwords.
    config.set_main_option(
        "sqlalchemy.url", normalize_url(url).render_as_string(False).replace("%", "%%")
    )
    config.attributes["ise_es_url"] = url
    return config


def head() -> str:
    revision = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert revision is not None, "migrations/versions holds no revision"
    return revision


def _revision_of(conn: sa.Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def check_at_head(conn: sa.Connection) -> None:
    """Raises SchemaOutOfDate unless the database is at the newest migration."""
    have, want = _revision_of(conn), head()
    if have != want:
        raise SchemaOutOfDate(
            f"database at revision {have or 'none (empty)'}, expected {want}: "
            "run `ise-es db upgrade`"
        )


def _run(url: str, action: str, revision: str) -> None:
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
