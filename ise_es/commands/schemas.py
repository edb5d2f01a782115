"""`ise-es schemas export`: the JSON Schemas generated from the code, written out for
the checked-in `schemas/` folder (a test fails when they are stale)."""

from __future__ import annotations

from pathlib import Path

import click

from ise_es.commands.common import reports_errors

__all__ = ["schemas_group"]


@click.group("schemas")
def schemas_group() -> None:
    """JSON Schemas of the event payloads and export formats.

    \b
    Example:
        ise-es schemas export --dir schemas
    """


@schemas_group.command("export")
@click.option("--dir", "directory", default="schemas", show_default=True, type=click.Path())
@reports_errors
def schemas_export(directory: str) -> None:
    """Write the JSON Schemas generated from the code into DIR.

    \b
    Example:
        ise-es schemas export --dir schemas
    """
    from ise_es.schema_export import write_schemas

    for path in write_schemas(Path(directory)):
        click.echo(f"wrote {path}")
