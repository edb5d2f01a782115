"""What `ise-es project diversity` does behind the CLI: pick the texts, embed, report.

The texts come from one of two stages (accepted intents from `ise_es.intents.diversity`, first
user turns from `ise_es.projections.diversity`); choosing between them is the presentation
layer's job, so neither stage imports the other. The report is `ise_es.diversity.report`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ise_es.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from rich.console import Console

    from ise_es.diversity.report import DiversityItem
    from ise_es.intents.library import Library
    from ise_es.store.base import EventStore

__all__ = ["run_diversity", "select_items"]


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
