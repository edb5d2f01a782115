"""What every command shares: library errors turned into one line and an exit code, and the
`--db` option. cli.py and every command module take them from here."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from ise_es.errors import (
    ConfigError,
    InvalidInput,
    IseEsError,
    SchemaOutOfDate,
    StoreUnavailable,
    TemplateError,
)

__all__ = ["USAGE_ERRORS", "db_option", "reports_errors"]

F = TypeVar("F", bound=Callable[..., Any])

# An unknown template, or one whose digest changed, is bad input too (the user names templates).
USAGE_ERRORS = (ConfigError, InvalidInput, StoreUnavailable, SchemaOutOfDate, TemplateError)


def reports_errors(func: F) -> F:
    """Turn library errors into a one-line `Error: ...` and an exit code: 2 for bad
    configuration or input and unreachable services, 1 for other failures."""

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
