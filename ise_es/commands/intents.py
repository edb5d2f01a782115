"""`ise-es intents ...`: persona pools, intent generation, JSONL import/export and the size
of the intent space.

The intents stage returns data and calls back with progress (`ise_es.intents.commands`,
`generate`, `llm_render`, `jsonl`); this module builds the model clients from the `--ROLE-*`
options, shows the progress and prints. numpy, the generator and rich are imported by the
commands that use them, so `intents space` starts in a fraction of the time `intents generate`
takes to load.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ise_es.commands.common import db_option, opened_store, reports_errors
from ise_es.commands.options import apply, role_options, workers_option

if TYPE_CHECKING:
    from rich.console import Console

    from ise_es.intents.dedup import NearIndex
    from ise_es.intents.generate import GenerateReport
    from ise_es.intents.personas import PersonaPool
    from ise_es.intents.render import Renderer
    from ise_es.llm.base import ChatClient
    from ise_es.store.base import EventStore

__all__ = ["intents_group"]


@click.group("intents")
def intents_group() -> None:
    """Stage 1: personas, 4D intent sampling, rendering, dedup, JSONL import/export.

    \b
    Example:
        ise-es intents personas --count 1000 --generator offline
        ise-es intents generate --count 500 --seed 7 --renderer template
        ise-es intents export -o intents.jsonl
    """


@intents_group.command("personas")
@db_option
@click.option("--count", type=click.IntRange(1), default=1000, show_default=True)
@click.option(
    "--generator",
    type=click.Choice(["llm", "offline"]),
    default="llm",
    show_default=True,
    help="llm: ask the persona model; offline: the seeded combiner of shipped parts.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--batch",
    type=click.IntRange(1, 50),
    default=10,
    show_default=True,
    help="Personas asked for per model call.",
)
@apply(role_options("persona"))
@reports_errors
def intents_personas(
    db_url: str, count: int, generator: str, seed: int, batch: int, **roles: Any
) -> None:
    """Generate, validate, deduplicate and freeze a persona pool.

    \b
    Example:
        ise-es intents personas --count 1000 --persona-model qwen3-8b \\
            --persona-base-url http://127.0.0.1:8000/v1
        ise-es intents personas --count 200 --generator offline --seed 1
    """
    with opened_store(db_url) as store:
        pool, fresh, notes = _make_personas(
            store, count=count, generator=generator, seed=seed, batch=batch, roles=roles
        )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    state = "frozen" if fresh else "already frozen"
    click.echo(f"persona pool {pool.pool_id} {state} (digest {pool.digest})")
    click.echo("  " + "  ".join(f"{k}={v}" for k, v in pool.counts.items()))


@intents_group.command("generate")
@db_option
@click.option("--count", type=click.IntRange(1), required=True, help="Intents to accept.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--renderer", type=click.Choice(["llm", "template"]), default="llm", show_default=True
)
@workers_option(default=4, maximum=64)
@click.option("--pool", "pool_id", default=None, help="Persona pool id (default: the latest).")
@click.option(
    "--near-dup",
    type=click.Choice(["auto", "embedding", "minhash", "off"]),
    default="auto",
    show_default=True,
    help="Near-duplicate method; auto: embeddings for --renderer llm when the model loads, "
    "else MinHash.",
)
@click.option(
    "--near-threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Cosine (default 0.92) or estimated Jaccard (default 0.8) threshold.",
)
@click.option("--embed-model", default="all-mpnet-base-v2", show_default=True)
@apply(role_options("render"))
@reports_errors
def intents_generate(
    db_url: str,
    count: int,
    seed: int,
    renderer: str,
    workers: int,
    pool_id: str | None,
    near_dup: str,
    near_threshold: float | None,
    embed_model: str,
    **roles: Any,
) -> None:
    """Sample, render, deduplicate and record intents until COUNT are accepted.

    Resumable: rerunning the same command continues where it stopped.

    \b
    Example:
        ise-es intents generate --count 1000 --seed 7 --renderer template
        ise-es intents generate --count 1000 --workers 8 --render-model qwen3-8b
    """
    from rich.console import Console

    from ise_es.intents.commands import near_index, pick_pool

    console = Console(stderr=True)
    with opened_store(db_url) as store:
        pool = pick_pool(store, pool_id)
        render, client = _renderer(renderer, roles)
        try:
            # Template texts share most of their words by construction; sentence embeddings
            # put them all close together, so only shingle overlap separates them meaningfully.
            method = "minhash" if near_dup == "auto" and renderer == "template" else near_dup
            near = near_index(
                method,
                near_threshold,
                embed_model,
                environ=os.environ,
                note=lambda text: console.print(text, style="dim"),
            )
            r = _generate(store, pool, render, near, count, seed, workers, console)
        finally:
            if client is not None:
                client.close()
    click.echo(
        f"accepted {r.accepted}/{r.target} (resumed {r.resumed}); this run drew {r.draws}: "
        f"{r.duplicates} duplicates, {r.invalid} invalid; pool {r.pool_id}, seed {r.seed}"
    )
    if r.exhausted:
        click.echo("Error: stopped at the draw limit before reaching --count", err=True)
        sys.exit(1)


@intents_group.command("export")
@db_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSONL file; - for stdout.",
)
@click.option("--include-rejected", is_flag=True, help="Also write rejected intents.")
@reports_errors
def intents_export(db_url: str, output: Path, include_rejected: bool) -> None:
    """Write intents as JSONL in the reference schema.

    \b
    Example:
        ise-es intents export -o intents.jsonl
    """
    from ise_es.intents.jsonl import export_intents
    from ise_es.intents.library import load_library

    with opened_store(db_url) as store:
        r = export_intents(store, output, load_library(), include_rejected=include_rejected)
    click.echo(
        f"wrote {r.written} intents to {output} ({r.skipped_rejected} rejected left out)",
        err=str(output) == "-",  # the JSONL itself went to stdout
    )


@intents_group.command("import")
@db_option
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Record the valid lines, report the rest.")
@reports_errors
def intents_import(db_url: str, file: Path, skip_invalid: bool) -> None:
    """Record intents from a reference-schema JSONL file (or {question, answer} lines).

    \b
    Example:
        ise-es intents import intents.jsonl
        ise-es intents import questions.jsonl --skip-invalid
    """
    from ise_es.intents.jsonl import import_intents

    with opened_store(db_url) as store:
        r = import_intents(store, file, skip_invalid=skip_invalid)
    for problem in r.invalid:
        click.echo(f"skipped {problem}", err=True)
    click.echo(
        f"imported {r.recorded} intents ({r.already_present} already present, "
        f"{len(r.invalid)} invalid lines skipped)"
    )


@intents_group.command("space")
@click.option(
    "--db",
    "db_url",
    envvar="ISE_ES_DB",
    default=None,
    help="Store holding the persona pool (env ISE_ES_DB).",
)
@click.option("--pool", "pool_id", default=None, help="Persona pool id (default: the latest).")
@click.option(
    "--personas",
    type=click.IntRange(1),
    default=None,
    help="Count personas as this many instead of reading a pool.",
)
@reports_errors
def intents_space(db_url: str | None, pool_id: str | None, personas: int | None) -> None:
    """Print the size of the Persona x Domain x Task x Complexity space and its factors.

    \b
    Example:
        ise-es intents space --personas 1000
    """
    from ise_es.intents.commands import space_report

    if personas is None and db_url:
        with opened_store(db_url) as store:
            s = space_report(store, pool_id, None)
    else:
        s = space_report(None, pool_id, personas)
    subsets = " + ".join(f"C({s.domains},{k}) = {v}" for k, v in s.domain_subsets.items())
    click.echo(f"domains: {s.domains}")
    click.echo(f"domain subsets: {subsets} -> {s.domain_subset_total}")
    click.echo(f"task subsets (3-6 tasks of the chosen domains), summed: {s.task_subsets:,}")
    click.echo(
        f"  of which touch every chosen domain (what the sampler draws): "
        f"{s.task_subsets_covering:,}"
    )
    click.echo(f"complexity levels: {s.complexities}")
    click.echo(f"personas: {s.personas}")
    click.echo(
        f"tuple space: {s.task_subsets:,} x {s.complexities} x {s.personas} = {s.total:,}"
        f" ({s.total:.3e}); sampler-reachable: {s.total_covering:.3e}"
    )


def _client(role: str, roles: Mapping[str, Any]) -> ChatClient:
    """The OpenAI-compatible client of `role` from its `--ROLE-*` options."""
    from ise_es.llm.openai_client import OpenAIChatClient
    from ise_es.llm.roles import role_config_from_options

    return OpenAIChatClient(role_config_from_options(role, roles, os.environ), environ=os.environ)


def _make_personas(
    store: EventStore,
    *,
    count: int,
    generator: str,
    seed: int,
    batch: int,
    roles: Mapping[str, Any],
) -> tuple[PersonaPool, bool, list[str]]:
    """`make_personas` with the persona model's client and a progress display (llm), or
    the offline combiner."""
    from rich.console import Console

    from ise_es.commands.progress import progress_display
    from ise_es.errors import ConfigError
    from ise_es.intents.commands import make_personas

    if generator == "offline":
        return make_personas(store, count=count, seed=seed, batch=batch, client=None)
    if not roles.get("persona_model"):
        raise ConfigError(
            "--generator llm needs --persona-model (and --persona-base-url); "
            "use --generator offline for the seeded offline combiner"
        )
    client = _client("persona", roles)
    progress = progress_display("personas", Console(stderr=True))
    task = progress.add_task("personas", total=count, detail="")
    try:
        with progress:
            return make_personas(
                store,
                count=count,
                seed=seed,
                batch=batch,
                client=client,
                progress=lambda b, calls: progress.update(
                    task,
                    completed=min(len(b.personas), count),
                    detail=f"calls {calls}  invalid {len(b.invalid)}  dup {b.duplicates}",
                ),
            )
    finally:
        client.close()


def _renderer(name: str, roles: Mapping[str, Any]) -> tuple[Renderer, ChatClient | None]:
    """The intent renderer `--renderer` names, and the client it holds (closed by the caller)."""
    from ise_es.errors import ConfigError
    from ise_es.intents.render import TemplateRenderer

    if name == "template":
        return TemplateRenderer(), None
    if not roles.get("render_model"):
        raise ConfigError(
            "--renderer llm needs --render-model (and --render-base-url); "
            "use --renderer template to run offline"
        )
    from ise_es.intents.llm_render import LLMRenderer

    client = _client("render", roles)
    return LLMRenderer(client), client


def _generate(
    store: EventStore,
    pool: PersonaPool,
    renderer: Renderer,
    near: NearIndex | None,
    count: int,
    seed: int,
    workers: int,
    console: Console,
) -> GenerateReport:
    """`generate_intents` with a progress display: accepted of COUNT, draws, rejections."""
    from ise_es.commands.progress import progress_display
    from ise_es.intents.dedup import Deduplicator
    from ise_es.intents.generate import generate_intents
    from ise_es.intents.library import load_library

    progress = progress_display("intents", console)
    task = progress.add_task("intents", total=count, detail="")

    def show(r: GenerateReport) -> None:
        progress.update(
            task,
            completed=min(r.accepted, count),
            detail=f"drawn {r.draws}  duplicates {r.duplicates}  invalid {r.invalid}",
        )

    with progress:
        return generate_intents(
            store,
            library=load_library(),
            pool=pool,
            renderer=renderer,
            dedup=Deduplicator(near),
            count=count,
            seed=seed,
            workers=workers,
            progress=show,
        )
