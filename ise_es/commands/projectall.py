"""`ise-es project all`: the SFT export, the audit and the stats read models from one read of
the log (ise_es/projections/onepass.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import apply, split_workers_option
from ise_es.commands.selection import export_options, selection_options

if TYPE_CHECKING:
    from ise_es.projections.run import AllRun

__all__ = ["project_all"]

PROJECTIONS = ("export", "audit", "stats")


def _projections(_ctx: click.Context, _param: click.Parameter, value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(PROJECTIONS))
    if unknown or not names:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose among {', '.join(PROJECTIONS)}"
        )
    return names


def _note(result: Any) -> str:
    how = "rebuilt" if result.rebuilt else "incremental"
    return f"read model {result.name}: {how}, {result.sessions} sessions refolded"


@click.command("all")
@db_option
@click.option(
    "--with",
    "projections",
    default=",".join(PROJECTIONS),
    show_default=True,
    callback=_projections,
    help="Projections fed by the one read: any of export, audit, stats.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="JSONL file of the export (needed when export is among --with); - for stdout.",
)
@apply(selection_options())
@click.option("--force", is_flag=True, help="Write the export even when it is up to date.")
@click.option("--rebuild", is_flag=True, help="Recompute the read models from the first event.")
@split_workers_option()
@reports_errors
def project_all(
    db_url: str,
    projections: list[str],
    output: str | None,
    force: bool,
    rebuild: bool,
    workers: int | None,
    **selection: Any,
) -> None:
    """Export, audit and stats from one read of the log: each event is read and decoded once
    (only the types they read), each session folded once, and every read model keeps its own
    checkpoint. The same files and rows as running `sft-jsonl`, `audit` and `stats` one after
    another; the audit and stats reports are those commands' summaries. On a large log the
    read is split by stream among processes, one per core (--workers).

    \b
    Example:
        ise-es project all -o sft.jsonl --db sqlite:///corpus.db
        ise-es project all --with audit,stats --db sqlite:///corpus.db
        ise-es project all -o sft.jsonl --format sharegpt --clean --split train=0.95,val=0.05
    """
    from ise_es.errors import ConfigError
    from ise_es.projections.run import run_all
    from ise_es.store.sql import open_store

    if "export" in projections and output is None:
        raise ConfigError("the export needs -o FILE (or leave it out: --with audit,stats)")
    options = export_options(selection) if "export" in projections else None
    with opened_store(db_url) as store:
        run = run_all(
            store,
            projections=projections,
            output=output,
            options=options,
            force=force,
            lexicon=selection.get("lexicon"),
            rebuild=rebuild,
            workers=workers,
            opener=open_store,
        )
    _report(run, err=output == "-")  # the JSONL went to stdout: every summary to stderr


def _report(run: AllRun, *, err: bool) -> None:
    """What each projection made, then how the read went."""
    if run.export is not None:
        for f in run.export.files:
            label = f" ({f.split})" if f.split else ""
            click.echo(f"{f.path}{label}: {f.samples} samples, {f.bytes} bytes", err=err)
        if run.export.up_to_date:
            click.echo("export up to date: no new events since the last one", err=err)
        else:
            click.echo(
                f"{run.export.sessions_exported} of {run.export.sessions_considered} "
                "sessions exported",
                err=err,
            )
    if run.audit is not None:
        click.echo(_note(run.audit.catch_up), err=True)
        for line in run.audit.summary.lines():
            click.echo(line, err=err)
    if run.stats is not None:
        click.echo(_note(run.stats.catch_up), err=True)
        for line in run.stats.stats.lines():
            click.echo(line, err=err)
    split = f", split among {run.parts} processes" if run.parts > 1 else ""
    click.echo(
        f"one read: {run.events_read} events decoded in {run.seconds:.1f} s{split}", err=True
    )
