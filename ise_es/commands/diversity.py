"""`ise-es project diversity`: pick the texts, embed, report.

The texts come from one of two stages (accepted intents from `ise_es.intents.diversity`, first
user turns from `ise_es.projections.diversity`); choosing between them is the presentation
layer's job, so neither stage imports the other. The report is `ise_es.diversity.report`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from rich.console import Console

    from ise_es.diversity.report import DiversityItem
    from ise_es.intents.library import Library
    from ise_es.store.base import EventStore

__all__ = ["diversity_command", "run_diversity", "select_items"]


def select_items(
    store: EventStore, source: str, library: Library
) -> tuple[list[DiversityItem], str, str]:
    """(items, label, note) for `source` (intents | first-turns). A store with no accepted
    intents (a corpus recorded from scenarios or imported) falls back to the first user turns,
    and the note says so: an empty default is never the answer when there are texts."""
    from ise_es.intents.diversity import items_from_intents
    from ise_es.projections.diversity import items_from_first_turns

    if source == "first-turns":
        return items_from_first_turns(store), "first user turns", ""
    items = items_from_intents(store, library)
    if items:
        return items, "intents", ""
    turns = items_from_first_turns(store)
    if not turns:
        return items, "intents", ""
    note = (
        f"the store holds no accepted intents; measuring the first user turns of "
        f"{len(turns)} sessions instead (--source first-turns)"
    )
    return turns, "first user turns", note


def run_diversity(
    *,
    store: EventStore | None,
    input_file: Path | None,
    source: str,
    model: str,
    q: float,
    seed: int,
    output: Path | None,
    plot: Path | None,
    console: Console,
) -> str:
    """Build the report; returns its text form (files are written when asked)."""
    from ise_es.diversity.report import (
        DiversityOptions,
        diversity_report,
        format_report,
        plot_scaling_curve,
        write_report,
    )
    from ise_es.intents.diversity import items_from_file
    from ise_es.intents.embeddings import DEFAULT_MODEL, Embedder, default_cache_dir
    from ise_es.outputs import check_output_path, is_stdout

    # The outputs are checked before the (slow) embedding, not found unwritable after it.
    if output is not None and not is_stdout(output):
        check_output_path(output)
    if plot is not None:
        check_output_path(plot)
    note = ""
    if input_file is not None:
        items = items_from_file(input_file)
        label = str(input_file)
    elif store is None:
        raise ConfigError("give --input FILE.jsonl or a store (--db)")
    else:
        from ise_es.intents.library import load_library

        items, label, note = select_items(store, source, load_library())
    if len(items) < 2:
        raise InvalidInput(f"{label}: {len(items)} texts; diversity needs at least 2")
    embedder = Embedder(model or DEFAULT_MODEL, cache_dir=default_cache_dir(os.environ))
    with console.status(f"embedding {len(items)} texts with {embedder.model}"):
        report = diversity_report(
            items,
            embedder,
            options=DiversityOptions(q=q, seed=seed),
            source=label,
            model=embedder.model,
        )
    report.note = note
    report.embedded_now = embedder.stats.computed
    report.cache_hits = embedder.stats.cache_hits
    if output is not None:
        write_report(report, output)
    if plot is not None:
        plot_scaling_curve(report, plot)
    return format_report(report)


@click.command("diversity")
@db_option
@click.option(
    "--source", type=click.Choice(["intents", "first-turns"]), default="intents", show_default=True
)
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read an intents JSONL file instead of the store.",
)
@click.option(
    "--model",
    default="all-mpnet-base-v2",
    show_default=True,
    help="all-mpnet-base-v2, all-minilm-l6-v2, or a model directory.",
)
@click.option("--q", type=float, default=1.0, show_default=True, help="Vendi Score order.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report as JSON (- for stdout).",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the Vendi scaling curve as PNG.",
)
@reports_errors
def diversity_command(
    db_url: str,
    source: str,
    input_file: Path | None,
    model: str,
    q: float,
    seed: int,
    output: Path | None,
    plot: Path | None,
) -> None:
    """Diversity of intents or first user turns: Vendi, bootstrap, curve, Distinct-N, Self-BLEU.

    Needs the optional extra: pip install torch==2.13.0 'ise-es[diversity]'.

    \b
    Example:
        ise-es project diversity -o diversity.json --plot vendi.png
        ise-es project diversity --input intents.jsonl --model all-minilm-l6-v2
    """
    from functools import partial

    from rich.console import Console

    run = partial(
        run_diversity,
        input_file=input_file,
        source=source,
        model=model,
        q=q,
        seed=seed,
        output=output,
        plot=plot,
        console=Console(stderr=True),
    )
    if input_file is not None:
        text = run(store=None)
    else:
        with opened_store(db_url) as store:
            text = run(store=store)
    click.echo(text, err=str(output) == "-")  # with -o - the JSON report has stdout
