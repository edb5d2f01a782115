"""Publishing commands: `project hf-dataset`, `project atif` and `import atif` (cli.py
registers them in their groups)."""

from __future__ import annotations

from typing import Any

import click

from ise_es.commands.common import db_option, opened_projection_store, opened_store, reports_errors
from ise_es.commands.options import SESSION_STATUSES, apply
from ise_es.commands.project import catch_up_note
from ise_es.commands.selection import export_options, selection_options

__all__ = ["atif_command", "hf_dataset_command", "import_atif_command"]


@click.command("hf-dataset")
@db_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset folder (created, or replaced if ise-es wrote it).",
)
@apply(selection_options())
@click.option("--license", "license_id", help="License id for the card [default: other].")
@click.option(
    "--rows-per-group",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Rows per Parquet row group (also bounded at 32 MiB of rows).",
)
@click.option(
    "--rows-per-file",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Rows per Parquet file before a new shard starts.",
)
@click.option(
    "--mib-per-file",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Size of a Parquet file before a new shard starts.",
)
@click.option("--force", is_flag=True, help="Write even when the folder is up to date.")
@reports_errors
def hf_dataset_command(
    db_url: str,
    output: str,
    license_id: str | None,
    rows_per_group: int,
    rows_per_file: int,
    mib_per_file: int,
    force: bool,
    **selection: Any,
) -> None:
    """Write trajectories as a Hugging Face dataset folder: data/SPLIT-NNNNN-of-MMMMM.parquet
    (declared schema, zstd, small row groups), a dataset card README.md with its figures
    generated from the store, the statistics PNGs, and manifest.json (every file's sha256
    and rows, and the store position). Same selection and formats as sft-jsonl.

    \b
    Example:
        ise-es project hf-dataset -o my-dataset --split train=0.95,test=0.05 --clean
        ise-es project hf-dataset -o my-dataset --format sharegpt --license apache-2.0
    """
    from ise_es.projections.hfdataset import HfOptions, export_hf_dataset

    options = HfOptions(
        export=export_options(selection),
        license=license_id,
        group_rows=rows_per_group,
        file_rows=rows_per_file,
        file_bytes=mib_per_file << 20,
    )
    with opened_projection_store(db_url) as (store, engines):
        report = export_hf_dataset(store, engines, output, options, force=force)
    for caught in report.read_models:
        click.echo(catch_up_note(caught), err=True)
    for f in report.files:
        click.echo(f"{report.folder}/{f.path}: {f.rows} rows, {f.bytes} bytes")
    if report.up_to_date:
        click.echo("up to date: no session ended since the last export with these options")
        return
    skipped = ", ".join(f"{v} {k}" for k, v in report.skipped.items())
    click.echo(
        f"{report.sessions_exported} of {report.sessions_considered} sessions exported, "
        + ", ".join(f"{k} {v}" for k, v in report.splits.items())
        + (f"; skipped: {skipped}" if skipped else "")
        + f" ({report.seconds:.1f} s)"
    )


@click.command("atif")
@db_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of trajectories (created, or replaced if ise-es wrote it).",
)
@click.option(
    "--status",
    type=click.Choice([*SESSION_STATUSES, "any"]),
    default="completed",
    show_default=True,
    help="Sessions to write by how they ended.",
)
@click.option("--force", is_flag=True, help="Write even when the folder is up to date.")
@reports_errors
def atif_command(db_url: str, output: str, status: str, force: bool) -> None:
    """Write every ended session as an ATIF v1.4 trajectory (Harbor's Agent Trajectory
    Interchange Format): DIR/SESSION_ID.json with steps (messages, reasoning, tool calls,
    observations, metrics from the model calls' usage), plus DIR/manifest.json.
    schemas/atif-v1.4.schema.json describes the files.

    \b
    Example:
        ise-es project atif -o trajectories/ --db sqlite:///corpus.db
        ise-es project atif -o all/ --status any
    """
    from ise_es.projections.atif import export_atif

    with opened_store(db_url) as store:
        report = export_atif(store, output, status=status, force=force)
    if report.up_to_date:
        click.echo(f"{report.folder}: {report.files} trajectories")
        click.echo("up to date: no session ended since the last export with these options")
        return
    skipped = ", ".join(f"{v} {k}" for k, v in report.skipped.items())
    click.echo(
        f"{report.folder}: {report.files} trajectories of {report.sessions_considered} "
        f"ended sessions"
        + (f"; skipped: {skipped}" if skipped else "")
        + f" ({report.seconds:.1f} s)"
    )


@click.command("atif")
@db_option
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@reports_errors
def import_atif_command(db_url: str, paths: tuple[str, ...]) -> None:
    """Import ATIF trajectories (JSON files, or every *.json under a directory), one
    session per file. Their tool calls are marked as not executed by ise-es (sandbox
    `atif`). Re-importing a file is a no-op; the command exits 1 if a file failed.

    \b
    Example:
        ise-es import atif trajectories/ --db sqlite:///corpus.db
        ise-es import atif run-1.json run-2.json
    """
    from ise_es.commands.imports import report_imports
    from ise_es.projections.atif_import import import_atif

    with opened_store(db_url) as store:
        results = import_atif(store, paths)
    report_imports(results)
