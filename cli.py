"""`ise-es`: the command line. Thin: it parses, calls the library, prints.

Library errors (`IseEsError`) become one-line messages here and nowhere else: exit 2 for bad
configuration or input and unreachable services, 1 for other failures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ise_es.errors import ConfigError, InvalidInput, IseEsError, SchemaOutOfDate, StoreUnavailable

F = TypeVar("F", bound=Callable[..., Any])

USAGE_ERRORS = (ConfigError, InvalidInput, StoreUnavailable, SchemaOutOfDate)


def reports_errors(func: F) -> F:
    """Turn library errors into a one-line `Error: ...` and an exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IseEsError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(2 if isinstance(e, USAGE_ERRORS) else 1)

    return wrapper  # type: ignore[return-value]


db_option = click.option(
    "--db",
    "db_url",
    envvar="ISE_ES_DB",
    default="sqlite:///ise-es.db",
    show_default=True,
    help="Store URL: sqlite:///PATH or postgresql://USER:PASS@HOST/DB (env ISE_ES_DB).",
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "ISE_ES"}
)
@click.version_option(package_name="ise-es")
def main() -> None:
    """ise-es: record, replay and project execution-grounded agent trajectories.

    \b
    Example:
        ise-es db upgrade --db sqlite:///corpus.db
        ise-es record --scenario fixtures/scenarios --db sqlite:///corpus.db
    """


# ----------------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """Create and migrate the store's schema (Alembic).

    \b
    Example:
        ise-es db upgrade --db postgresql://postgres:secret@127.0.0.1/corpus
        ise-es db current --db sqlite:///ise-es.db
    """


@db.command("upgrade")
@db_option
@click.argument("revision", default="head")
@reports_errors
def db_upgrade(db_url: str, revision: str) -> None:
    """Migrate the store up to REVISION (default: the newest).

    \b
    Example:
        ise-es db upgrade --db sqlite:///corpus.db
    """
    from ise_es.store import migrate

    migrate.upgrade(db_url, revision)
    click.echo(f"database at revision {migrate.current(db_url)}")


@db.command("downgrade")
@db_option
@click.argument("revision", default="base")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@reports_errors
def db_downgrade(db_url: str, revision: str, yes: bool) -> None:
    """Migrate the store down to REVISION (default: base, which DROPS every table).

    \b
    Example:
        ise-es db downgrade 0001 --db sqlite:///corpus.db
    """
    from ise_es.store import migrate

    if revision == "base" and not yes:
        click.confirm(f"Drop every ise-es table in {db_url}?", abort=True)
    migrate.downgrade(db_url, revision)
    click.echo(f"database at revision {migrate.current(db_url) or 'base (empty)'}")


@db.command("current")
@db_option
@reports_errors
def db_current(db_url: str) -> None:
    """Print the store's schema revision and the newest one this ise-es knows.

    \b
    Example:
        ise-es db current --db sqlite:///corpus.db
    """
    from ise_es.store import migrate

    have, want = migrate.current(db_url), migrate.head()
    click.echo(
        f"{have or 'none'} (head: {want}){'' if have == want else ' - run `ise-es db upgrade`'}"
    )


@db.command("history")
@reports_errors
def db_history() -> None:
    """List the migrations, oldest first.

    \b
    Example:
        ise-es db history
    """
    from ise_es.store import migrate

    for revision, down, message in migrate.history():
        click.echo(f"{down or 'base'} -> {revision}  {message.splitlines()[0] if message else ''}")


# ----------------------------------------------------------------------------- verify


@main.command()
@db_option
@reports_errors
def verify(db_url: str) -> None:
    """Re-walk every stream's hash chain and check it against the stream heads.

    Exits 1 and names the first broken stream/version when anything was altered or cut off.

    \b
    Example:
        ise-es verify --db sqlite:///corpus.db
    """
    from ise_es.store.sql import open_store

    with open_store(db_url) as store:
        report = store.verify()
        lag = store.oldest_open_transaction_age()
    if lag is not None and lag > 5:
        click.echo(
            f"note: the oldest open write transaction is {lag:.0f} s old (holds readers back)"
        )
    if report.ok:
        click.echo(f"ok: {report.streams} streams, {report.events} events verified")
        return
    for problem in report.problems:
        click.echo(f"BROKEN {problem}", err=True)
    raise SystemExit(1)


# ----------------------------------------------------------------------------- schemas


@main.group()
def schemas() -> None:
    """JSON Schemas of the event payloads and export formats.

    \b
    Example:
        ise-es schemas export --dir schemas
    """


@schemas.command("export")
@click.option("--dir", "directory", default="schemas", show_default=True, type=click.Path())
def schemas_export(directory: str) -> None:
    """Write the JSON Schemas generated from the code into DIR.

    \b
    Example:
        ise-es schemas export --dir schemas
    """
    from pathlib import Path

    from ise_es.schema_export import write_schemas

    for path in write_schemas(Path(directory)):
        click.echo(f"wrote {path}")


# ----------------------------------------------------------------------------- demo


@main.command()
@db_option
@reports_errors
def demo(db_url: str) -> None:
    """Append a small demo session to the store, read it back and verify it.

    \b
    Example:
        ise-es demo --db sqlite:///out/demo.db
    """
    import uuid

    from ise_es.events import SessionEnded, SessionStarted, UserTurn
    from ise_es.store.sql import open_store

    session = uuid.uuid4().hex[:12]
    with open_store(db_url) as store:
        store.append(
            f"session-{session}",
            [
                SessionStarted(session_id=session, intent_id="demo", intent="Say hello"),
                UserTurn(turn=1, text="Say hello"),
                SessionEnded(status="completed", reason="demo", user_turns=1),
            ],
            0,
        )
        for event in store.read_stream(f"session-{session}"):
            click.echo(f"{event.position:>6} {event.stream_id} v{event.version} {event.type}")
        report = store.verify()
    click.echo(f"verified {report.streams} streams, {report.events} events")


# ----------------------------------------------------------------------------- sandbox


@main.group()
def sandbox() -> None:
    """Sandbox images and workspace templates."""


@sandbox.command("build-image")
@click.option("--force", is_flag=True, help="Rebuild even when the image exists.")
@click.option("--mirror", default=None, help="Debian mirror URL (default: the host's apt one).")
@reports_errors
def sandbox_build_image(force: bool, mirror: str | None) -> None:
    """Build the docker backend's Debian bookworm image (debootstrap + docker import).

    Starts `dockerd --bridge=none` when no engine answers. Skipped when the image exists.

    \b
    Example:
        ise-es sandbox build-image
    """
    from ise_es.sandbox.dockerimage import build_base_image, ensure_dockerd

    client = ensure_dockerd()
    image_id = build_base_image(client, force=force, mirror=mirror, progress=click.echo)
    click.echo(image_id)


@sandbox.command("template-digest")
@click.argument("template")
@reports_errors
def sandbox_template_digest(template: str) -> None:
    """Print a workspace template's content digest (what sessions record).

    \b
    Example:
        ise-es sandbox template-digest pyproject
    """
    from ise_es.sandbox.templates import load_template

    click.echo(load_template(template).digest)


if __name__ == "__main__":
    main()
