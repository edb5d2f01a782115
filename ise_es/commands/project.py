"""`ise-es project sft-jsonl|audit|stats`: the projections of the log that each catch one read
model up (or export from one) and print. `project all`, `hf-dataset`, `atif` and `diversity`
live in projectall.py, publish.py and diversity.py; cli.py registers them in this group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import SESSION_STATUSES, apply, split_workers_option
from ise_es.commands.selection import export_options, selection_options

if TYPE_CHECKING:
    from ise_es.projections.readmodel import CatchUpResult

__all__ = ["catch_up_note", "project_group"]


def catch_up_note(result: CatchUpResult) -> str:
    """The stderr line saying what catching a read model up took."""
    how = "rebuilt" if result.rebuilt else "incremental"
    split = f", the read split among {result.parts} processes" if result.parts > 1 else ""
    return (
        f"read model {result.name}: {how}, {result.events} new events, {result.sessions} "
        f"sessions refolded in {result.seconds:.2f} s{split}"
    )


@click.group("project")
def project_group() -> None:
    """Projections of the log: SFT training files, audits and corpus statistics.

    \b
    Example:
        ise-es project sft-jsonl -o sft.jsonl --db sqlite:///corpus.db
        ise-es project audit --db sqlite:///corpus.db
        ise-es project stats --plots plots/ --db sqlite:///corpus.db
    """


@project_group.command("sft-jsonl")
@db_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSONL file; - for stdout.",
)
@apply(selection_options())
@click.option("--force", is_flag=True, help="Write even when the files are up to date.")
@split_workers_option()
@reports_errors
def project_sft_jsonl(
    db_url: str, output: str, force: bool, workers: int | None, **selection: Any
) -> None:
    """Write trajectories as SFT JSONL, one sample per line, in session-id order.

    With --split, one file per split (OUT.train.jsonl, OUT.val.jsonl), assigned by session id.

    \b
    Example:
        ise-es project sft-jsonl -o sft.jsonl --format sharegpt --reasoning think
        ise-es project sft-jsonl -o sft.jsonl --clean --split train=0.95,val=0.05 --seed 1
        ise-es project sft-jsonl -o middle.jsonl --format middle --middle-shape legacy
    """
    from ise_es.projections.run import run_export
    from ise_es.store.sql import open_store

    options = export_options(selection)
    with opened_store(db_url) as store:
        report = run_export(store, output, options, force=force, workers=workers, opener=open_store)
    err = output == "-"  # the JSONL went to stdout: the summary goes to stderr
    for f in report.files:
        label = f" ({f.split})" if f.split else ""
        click.echo(f"{f.path}{label}: {f.samples} samples, {f.bytes} bytes", err=err)
    if report.up_to_date:
        click.echo("up to date: no new events since the last export with these options")
        return
    skipped = ", ".join(f"{v} {k}" for k, v in sorted(report.skipped.items()))
    click.echo(
        f"{report.sessions_exported} of {report.sessions_considered} sessions exported"
        + (f"; skipped: {skipped}" if skipped else "")
        + f" ({report.seconds:.1f} s"
        + (f", the read split among {report.parts} processes)" if report.parts > 1 else ")"),
        err=err,
    )


@project_group.command("audit")
@db_option
@click.option("--lexicon", type=click.Path(exists=True, dir_okay=False), help="Role-drift lexicon.")
@click.option(
    "--status",
    type=click.Choice(["any", *SESSION_STATUSES]),
    default="any",
    show_default=True,
    help="Summarise sessions that ended so.",
)
@click.option("--rebuild", is_flag=True, help="Recompute every session from the first event.")
@click.option("--json", "as_json", is_flag=True, help="Summary and every finding as JSON.")
@click.option(
    "--show",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Flagged sessions to list.",
)
@split_workers_option()
@reports_errors
def project_audit(
    db_url: str,
    lexicon: str | None,
    status: str,
    rebuild: bool,
    as_json: bool,
    show: int,
    workers: int | None,
) -> None:
    """Rule-based audits of every session (role drift, stagnation, tool-call integrity, orphans,
    empty turns, leaked reasoning, secrets), stored per session and summarised.

    \b
    Example:
        ise-es project audit --db sqlite:///corpus.db
        ise-es project audit --lexicon my-phrases.txt --json > audit.json
    """
    import msgspec

    from ise_es.projections.run import run_audit
    from ise_es.store.sql import open_store

    with opened_store(db_url) as store:
        run = run_audit(
            store,
            lexicon=lexicon,
            status=status,
            rebuild=rebuild,
            workers=workers,
            opener=open_store,
        )
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(run)).decode())
        return
    click.echo(catch_up_note(run.catch_up), err=True)
    for line in run.summary.lines():
        click.echo(line)
    for audit in run.flagged[:show]:
        click.echo(f"  {audit.stream_id}:")
        for f in audit.findings:
            where = f" turn {f.turn}" if f.turn is not None else ""
            click.echo(f"    {f.rule}{where}: {f.detail}")
    if len(run.flagged) > show:
        click.echo(f"  ... {len(run.flagged) - show} more flagged sessions (--json lists all)")


@project_group.command("stats")
@db_option
@click.option(
    "--status",
    type=click.Choice(["completed", "any", "turn_cap", "stalled", "error", "interrupted"]),
    default="completed",
    show_default=True,
    help="Trajectories Table 3 is computed over.",
)
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False), help="Write PNGs here.")
@click.option("--rebuild", is_flag=True, help="Recompute every session from the first event.")
@split_workers_option()
@reports_errors
def project_stats(
    db_url: str,
    status: str,
    as_json: bool,
    plots_dir: str | None,
    rebuild: bool,
    workers: int | None,
) -> None:
    """Corpus statistics: the paper's Table 3, tool shares, trigrams, co-occurrence, exit
    codes, failure->recovery, tokens and the replay determinism rate.

    \b
    Example:
        ise-es project stats --db sqlite:///corpus.db
        ise-es project stats --json --plots plots/ > stats.json
    """
    import json

    from ise_es.projections.run import run_stats, stats_to_json
    from ise_es.store.sql import open_store

    with opened_store(db_url) as store:
        run = run_stats(store, status=status, rebuild=rebuild, workers=workers, opener=open_store)
    written = []
    if plots_dir:
        from ise_es.projections.plots import write_plots

        written = write_plots(run.stats, plots_dir)
    if as_json:
        click.echo(json.dumps(stats_to_json(run), indent=2))
    else:
        click.echo(catch_up_note(run.catch_up), err=True)
        for line in run.stats.lines():
            click.echo(line)
    for path in written:
        click.echo(f"wrote {path}", err=True)
