"""`ise-es db ...` (the schema's migrations) and `ise-es verify` (the log's hash chains): the
commands that look after the store itself."""

from __future__ import annotations

import click

from ise_es.commands.common import db_option, opened_store, reports_errors

__all__ = ["db_group", "verify_command"]


@click.group("db")
def db_group() -> None:
    """Create and migrate the store's schema (Alembic).

    \b
    Example:
        ise-es db upgrade --db postgresql://postgres:secret@127.0.0.1/corpus
        ise-es db current --db sqlite:///ise-es.db
    """


@db_group.command("upgrade")
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


@db_group.command("downgrade")
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


@db_group.command("current")
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


@db_group.command("history")
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


@click.command("verify")
@db_option
@reports_errors
def verify_command(db_url: str) -> None:
    """Re-walk every stream's hash chain and check it against the stream heads.

    Exits 1 and names the first broken stream/version when anything was altered or cut off.

    \b
    Example:
        ise-es verify --db sqlite:///corpus.db
    """
    with opened_store(db_url) as store:
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
