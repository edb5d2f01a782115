"""What every command shares: library errors turned into one line and an exit code, the
`--db` option, and the store opened for the length of a command (`opened_store`,
`opened_projection_store`). cli.py and every command module take them from here."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from ise_es.errors import (
    ConfigError,
    InvalidInput,
    IseEsError,
    SchemaOutOfDate,
    StoreUnavailable,
    TemplateError,
)

if TYPE_CHECKING:
    from ise_es.store.engine import Engines
    from ise_es.store.sql import SqlEventStore

__all__ = [
    "USAGE_ERRORS",
    "db_option",
    "exit_on",
    "opened_projection_store",
    "opened_store",
    "reports_errors",
]

F = TypeVar("F", bound=Callable[..., Any])

# An unknown template, or one whose digest changed, is bad input too (the user names templates).
USAGE_ERRORS = (ConfigError, InvalidInput, StoreUnavailable, SchemaOutOfDate, TemplateError)


def exit_on(error: IseEsError) -> NoReturn:
    """Print `error` as one line on stderr and exit: 2 for bad configuration or input and
    unreachable services, 1 for other failures."""
    click.echo(f"Error: {error}", err=True)
    sys.exit(2 if isinstance(error, USAGE_ERRORS) else 1)


def reports_errors(func: F) -> F:
    """Turn library errors raised by the command into `exit_on`'s line and exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except IseEsError as e:
            exit_on(e)

    return wrapper  # type: ignore[return-value]


@contextmanager
def opened_store(db_url: str) -> Iterator[SqlEventStore]:
    """The store at `db_url`, open for the block and closed after it. A library error from
    opening it (unreachable, not migrated) or from the block is reported as `exit_on` does,
    after the store is closed.

    The composition root: commands are the only code that picks the store implementation;
    everything they call is typed on `ise_es.store.base.EventStore`.
    """
    from ise_es.store.sql import open_store

    try:
        with open_store(db_url) as store:
            yield store
    except IseEsError as e:
        exit_on(e)


@contextmanager
def opened_projection_store(db_url: str) -> Iterator[tuple[SqlEventStore, Engines]]:
    """`opened_store` plus the engines the read-model tables are read through, on the same
    database.

    The engines are made first: they open no connection yet, while making them reads an
    SQLite file's header with a plain open()/close(), and closing any descriptor of a file
    drops every POSIX lock this process holds on it, so that must not happen once the
    store's connections are open.
    """
    from ise_es.store.engine import connect_engines

    try:
        engines = connect_engines(db_url)
    except IseEsError as e:
        exit_on(e)
    try:
        with opened_store(db_url) as store:
            yield store, engines
    finally:
        engines.dispose()


db_option = click.option(
    "--db",
    "db_url",
    envvar="ISE_ES_DB",
    default="sqlite:///ise-es.db",
    show_default=True,
    help="Store URL: sqlite:///PATH or postgresql://USER:PASS@HOST/DB (env ISE_ES_DB).",
)
