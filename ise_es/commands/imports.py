"""`ise-es import openclaw|middle` and how import results are printed (`import atif` is in
publish.py and prints with `report_imports` too)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ise_es.commands.common import db_option, opened_store, reports_errors

if TYPE_CHECKING:  # the importer loads on `ise-es import ...`, not on every start
    from ise_es.projections.openclaw import FileResult

__all__ = ["import_files", "import_group", "import_middle_command", "report_imports"]


@click.group("import")
def import_group() -> None:
    """Import sessions recorded elsewhere into the store.

    \b
    Example:
        ise-es import openclaw ~/.openclaw/agents/main/sessions/ --db sqlite:///corpus.db
        ise-es import middle reference-output/ --db sqlite:///corpus.db
    """


@import_group.command("openclaw")
@db_option
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--tools",
    "tools_file",
    type=click.Path(exists=True, dir_okay=False),
    help="The agent's real tool schemas (JSON list, or an object with 'tools'); without it "
    "each used tool's schema is inferred from its calls.",
)
@click.option(
    "--intents",
    "intents_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Intents JSONL: attach each session's intent by the id in its file name "
    "(intent_<id>__<worker>__<uuid>.jsonl).",
)
@click.option(
    "--skip-invalid", is_flag=True, help="Leave out lines that do not parse, report them."
)
@reports_errors
def import_openclaw_cmd(
    db_url: str,
    paths: tuple[str, ...],
    tools_file: str | None,
    intents_file: str | None,
    skip_invalid: bool,
) -> None:
    """Import OpenClaw session JSONL files (or every *.jsonl under a directory), one session
    stream per file. Re-importing a file is a no-op; a file with a bad line is not imported
    at all, and the command exits 1 after importing the others.

    \b
    Example:
        ise-es import openclaw fixtures/openclaw/ --db sqlite:///corpus.db
        ise-es import openclaw runs/ --tools tools.json --intents intents.jsonl --skip-invalid
    """
    results = import_files(
        db_url, paths, tools=tools_file, intents=intents_file, skip_invalid=skip_invalid
    )
    report_imports(results)


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

    schemas = load_tool_schemas(tools) if tools is not None else None
    records = intent_records_by_id(intents) if intents is not None else None
    with opened_store(url) as store:
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


@click.command("middle")
@db_option
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Leave out lines that are not trajectories, report them.",
)
@reports_errors
def import_middle_command(db_url: str, paths: tuple[str, ...], skip_invalid: bool) -> None:
    """Import ISE middle-format trajectories (legacy or current shape) as sessions: JSON
    files of one trajectory, JSONL files of one per line, or every *.json/*.jsonl under a
    directory. Re-importing is a no-op; the command exits 1 if a file failed.

    \b
    Example:
        ise-es import middle reference-output/ --db sqlite:///corpus.db
        ise-es import middle middle.jsonl --skip-invalid
    """
    from ise_es.projections.middle import import_middle

    with opened_store(db_url) as store:
        results = import_middle(store, paths, skip_invalid=skip_invalid)
    report_imports(results)
