"""`ise-es import ...`: how import results are printed, and `import middle`.

`import middle` is built by `import_middle_command(db_option, reports_errors)` so it shares
cli.py's `--db` option and error reporting without this module importing cli.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the importer loads on `ise-es import ...`, not on every start
    from ise_es.projections.openclaw import FileResult

__all__ = ["import_files", "import_middle_command", "report_imports"]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def import_files(
    url: str,
    paths: Iterable[str | Path],
    *,
    tools: str | Path | None = None,
    intents: str | Path | None = None,
    skip_invalid: bool = False,
) -> list[FileResult]:
    """`import openclaw`: files named by `tools` and `intents` are read before the store is
    opened, so a bad one fails before anything is imported. The intents file is read with
    the intents stage's parser and handed to the importer (a projection) as records, so
    neither stage imports the other."""
    from ise_es.intents.jsonl import intent_records_by_id
    from ise_es.projections.openclaw import import_openclaw, load_tool_schemas
    from ise_es.projections.run import open_projection_store

    schemas = load_tool_schemas(tools) if tools is not None else None
    records = intent_records_by_id(intents) if intents is not None else None
    with open_projection_store(url) as (store, _):
        return import_openclaw(
            store, paths, tools=schemas, intents=records, skip_invalid=skip_invalid
        )


def report_imports(results: Sequence[FileResult]) -> None:
    """One line per session or file, skipped lines on stderr, a summary; exit 1 if any failed."""
    for r in results:
        for problem in r.skipped:
            click.echo(f"skipped {problem}", err=True)
        if r.status == "failed":
            click.echo(f"Error: {r.error}", err=True)
        elif r.status != "skipped":
            note = ", intent attached" if r.intent_attached else ""
            click.echo(f"{r.status}: {r.path} -> {r.stream_id} ({r.events} events{note})")
    failed = sum(r.status == "failed" for r in results)
    skipped = sum(len(r.skipped) for r in results)
    click.echo(
        f"{sum(r.status == 'imported' for r in results)} imported, "
        f"{sum(r.status == 'already imported' for r in results)} already there, {failed} failed"
        + (f", {skipped} invalid lines skipped" if skipped else "")
    )
    if failed:
        raise SystemExit(1)


def import_middle_command(db_option: Decorator, reports_errors: Decorator) -> click.Command:
    @click.command("middle")
    @db_option
    @click.argument("paths", nargs=-1, required=True, type=click.Path())
    @click.option(
        "--skip-invalid",
        is_flag=True,
        help="Leave out lines that are not trajectories, report them.",
    )
    @reports_errors
    def import_middle_cmd(db_url: str, paths: tuple[str, ...], skip_invalid: bool) -> None:
        """Import ISE middle-format trajectories (legacy or current shape) as sessions: JSON
        files of one trajectory, JSONL files of one per line, or every *.json/*.jsonl under a
        directory. Re-importing is a no-op; the command exits 1 if a file failed.

        \b
        Example:
            ise-es import middle reference-output/ --db sqlite:///corpus.db
            ise-es import middle middle.jsonl --skip-invalid
        """
        from ise_es.projections.middle import import_middle
        from ise_es.projections.run import open_projection_store

        with open_projection_store(db_url) as (store, _):
            results = import_middle(store, paths, skip_invalid=skip_invalid)
        report_imports(results)

    return import_middle_cmd
