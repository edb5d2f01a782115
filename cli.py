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

from ise_es.errors import ConfigError, IseEsError, InvalidInput, SchemaOutOfDate, StoreUnavailable

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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "ISE_ES"})
@click.version_option(package_name="ise-es")
def main() -> None:
    """ise-es: record, replay and project execution-grounded agent trajectories.

    \b
    Example:
        ise-es db upgrade --db sqlite:///corpus.db
        ise-es record --scenario fixtures/scenarios --db sqlite:///corpus.db
    """


if __name__ == "__main__":
    main()
