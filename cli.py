"""`ise-es`: the command line. Thin: it parses, calls the library, prints.

Library errors (`IseEsError`) become one-line messages here and nowhere else: exit 2 for bad
configuration or input and unreachable services, 1 for other failures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ise_es.commands import db as _db
from ise_es.commands import publish as _publish
from ise_es.commands import record as _record
from ise_es.commands import replay as _replay
from ise_es.commands import schemas as _schemas
from ise_es.commands import sessions as _sessions
from ise_es.commands.common import db_option, reports_errors
from ise_es.commands.imports import import_middle_command as _import_middle_command
from ise_es.commands.options import apply as _apply
from ise_es.commands.options import role_options
from ise_es.commands.projectall import project_all as _project_all
from ise_es.commands.selection import export_options, selection_options
from ise_es.commands.serve import serve_command as _serve_command
from ise_es.errors import IseEsError

F = TypeVar("F", bound=Callable[..., Any])


templates_dir_option = click.option(
    "--templates-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where template names are looked up first (default: ./fixtures/templates); the "
    "shipped templates come after it.",
)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "ISE_ES"}
)
@click.version_option(package_name="ise-es")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ISE_ES_CONFIG",
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _param, value: _load_config(ctx, value),
    help="Settings file (TOML); default ./ise-es.toml when present. Flags and environment "
    "variables override it.",
)
def main() -> None:
    """ise-es: record, replay and project execution-grounded agent trajectories.

    \b
    Example:
        ise-es db upgrade --db sqlite:///corpus.db
        ise-es record --scenario shipped --db sqlite:///corpus.db
    """


# ----------------------------------------------------------------------------- store

main.add_command(_db.db_group)
main.add_command(_db.verify_command)
main.add_command(_schemas.schemas_group)


# ----------------------------------------------------------------------------- record

main.add_command(_record.record_command)
main.add_command(_record.worker_command)
main.add_command(_record.queue_group)


# ----------------------------------------------------------------------------- sessions

main.add_command(_sessions.sessions_group)


# ----------------------------------------------------------------------------- replay

main.add_command(_replay.replay_command)


# ----------------------------------------------------------------------------- project


def _catch_up_note(result: Any) -> str:
    how = "rebuilt" if result.rebuilt else "incremental"
    return (
        f"read model {result.name}: {how}, {result.events} new events, {result.sessions} "
        f"sessions refolded in {result.seconds:.2f} s"
    )


@main.group()
def project() -> None:
    """Projections of the log: SFT training files, audits and corpus statistics.

    \b
    Example:
        ise-es project sft-jsonl -o sft.jsonl --db sqlite:///corpus.db
        ise-es project audit --db sqlite:///corpus.db
        ise-es project stats --plots plots/ --db sqlite:///corpus.db
    """


@project.command("sft-jsonl")
@db_option
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="JSONL file; - for stdout.",
)
@_apply(selection_options())
@click.option("--force", is_flag=True, help="Write even when the files are up to date.")
@reports_errors
def project_sft_jsonl(db_url: str, output: str, force: bool, **selection: Any) -> None:
    """Write trajectories as SFT JSONL, one sample per line, in session-id order.

    With --split, one file per split (OUT.train.jsonl, OUT.val.jsonl), assigned by session id.

    \b
    Example:
        ise-es project sft-jsonl -o sft.jsonl --format sharegpt --reasoning think
        ise-es project sft-jsonl -o sft.jsonl --clean --split train=0.95,val=0.05 --seed 1
        ise-es project sft-jsonl -o middle.jsonl --format middle --middle-shape legacy
    """
    from ise_es.projections.run import run_export

    options = export_options(selection)
    report = run_export(db_url, output, options, force=force)
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
        + f" ({report.seconds:.1f} s)",
        err=err,
    )


@project.command("audit")
@db_option
@click.option("--lexicon", type=click.Path(exists=True, dir_okay=False), help="Role-drift lexicon.")
@click.option(
    "--status",
    type=click.Choice(["any", "completed", "turn_cap", "stalled", "error", "interrupted"]),
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
@reports_errors
def project_audit(
    db_url: str, lexicon: str | None, status: str, rebuild: bool, as_json: bool, show: int
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

    run = run_audit(db_url, lexicon=lexicon, status=status, rebuild=rebuild)
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode(run)).decode())
        return
    click.echo(_catch_up_note(run.catch_up), err=True)
    for line in run.summary.lines():
        click.echo(line)
    for audit in run.flagged[:show]:
        click.echo(f"  {audit.stream_id}:")
        for f in audit.findings:
            where = f" turn {f.turn}" if f.turn is not None else ""
            click.echo(f"    {f.rule}{where}: {f.detail}")
    if len(run.flagged) > show:
        click.echo(f"  ... {len(run.flagged) - show} more flagged sessions (--json lists all)")


@project.command("stats")
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
@reports_errors
def project_stats(
    db_url: str, status: str, as_json: bool, plots_dir: str | None, rebuild: bool
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

    run = run_stats(db_url, status=status, rebuild=rebuild)
    written = []
    if plots_dir:
        from ise_es.projections.plots import write_plots

        written = write_plots(run.stats, plots_dir)
    if as_json:
        click.echo(json.dumps(stats_to_json(run), indent=2))
    else:
        click.echo(_catch_up_note(run.catch_up), err=True)
        for line in run.stats.lines():
            click.echo(line)
    for path in written:
        click.echo(f"wrote {path}", err=True)


project.add_command(_publish.hf_dataset_command(db_option, reports_errors))
project.add_command(_publish.atif_command(db_option, reports_errors))
project.add_command(_project_all)


# ----------------------------------------------------------------------------- import


@main.group("import")
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
    from ise_es.commands.imports import import_files, report_imports

    results = import_files(
        db_url, paths, tools=tools_file, intents=intents_file, skip_invalid=skip_invalid
    )
    report_imports(results)


import_group.add_command(_import_middle_command(db_option, reports_errors))
import_group.add_command(_publish.import_atif_command(db_option, reports_errors))
main.add_command(_serve_command(db_option, reports_errors))


# ----------------------------------------------------------------------------- sandbox


@main.group()
def sandbox() -> None:
    """Sandbox images and workspace templates.

    \b
    Example:
        ise-es sandbox build-image
        ise-es sandbox template-digest pyproject
    """


@sandbox.command("build-image")
@click.option("--force", is_flag=True, help="Rebuild even when the image exists.")
@click.option("--mirror", default=None, help="Debian mirror URL (default: the host's apt one).")
@reports_errors
def sandbox_build_image(force: bool, mirror: str | None) -> None:
    """Build the docker backend's Debian bookworm image (debootstrap + docker import).

    Starts `dockerd --bridge=none` when no engine answers. Skipped when the image exists.

    \b
    Example:
        ise-es sandbox build-image
    """
    from ise_es.sandbox.dockerimage import build_base_image, ensure_dockerd

    client = ensure_dockerd()
    image_id = build_base_image(client, force=force, mirror=mirror, progress=click.echo)
    click.echo(image_id)


@sandbox.command("template-digest")
@click.argument("template")
@templates_dir_option
@reports_errors
def sandbox_template_digest(template: str, templates_dir: Path | None) -> None:
    """Print a workspace template's content digest (what sessions record).

    TEMPLATE is a name (looked up as `record` and `replay` do), a path or `empty`.

    \b
    Example:
        ise-es sandbox template-digest pyproject
        ise-es sandbox template-digest mytpl --templates-dir ~/templates
    """
    from ise_es.sandbox.templates import load_template

    click.echo(load_template(template, templates_dir=templates_dir).digest)


# ----------------------------------------------------------------------------- intents


@main.group()
def intents() -> None:
    """Stage 1: personas, 4D intent sampling, rendering, dedup, JSONL import/export.

    \b
    Example:
        ise-es intents personas --count 1000 --generator offline
        ise-es intents generate --count 500 --seed 7 --renderer template
        ise-es intents export -o intents.jsonl
    """


@intents.command("personas")
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
@_apply(role_options("persona"))
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
    from rich.console import Console

    from ise_es.intents.commands import make_personas
    from ise_es.store.sql import open_store

    with open_store(db_url) as store:
        pool, fresh, notes = make_personas(
            store,
            count=count,
            generator=generator,
            seed=seed,
            batch=batch,
            roles=roles,
            console=Console(stderr=True),
        )
    for note in notes:
        click.echo(f"note: {note}", err=True)
    state = "frozen" if fresh else "already frozen"
    click.echo(f"persona pool {pool.pool_id} {state} (digest {pool.digest})")
    click.echo("  " + "  ".join(f"{k}={v}" for k, v in pool.counts.items()))


@intents.command("generate")
@db_option
@click.option("--count", type=click.IntRange(1), required=True, help="Intents to accept.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--renderer", type=click.Choice(["llm", "template"]), default="llm", show_default=True
)
@click.option("--workers", type=click.IntRange(1, 64), default=4, show_default=True)
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
@_apply(role_options("render"))
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

    from ise_es.intents.commands import run_generate
    from ise_es.store.sql import open_store

    with open_store(db_url) as store:
        r = run_generate(
            store,
            count=count,
            seed=seed,
            renderer_name=renderer,
            workers=workers,
            pool_id=pool_id,
            near=near_dup,
            threshold=near_threshold,
            embed_model=embed_model,
            roles=roles,
            console=Console(stderr=True),
        )
    click.echo(
        f"accepted {r.accepted}/{r.target} (resumed {r.resumed}); this run drew {r.draws}: "
        f"{r.duplicates} duplicates, {r.invalid} invalid; pool {r.pool_id}, seed {r.seed}"
    )
    if r.exhausted:
        click.echo("Error: stopped at the draw limit before reaching --count", err=True)
        sys.exit(1)


@intents.command("export")
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
    from ise_es.store.sql import open_store

    with open_store(db_url) as store:
        r = export_intents(store, output, load_library(), include_rejected=include_rejected)
    click.echo(
        f"wrote {r.written} intents to {output} ({r.skipped_rejected} rejected left out)",
        err=str(output) == "-",  # the JSONL itself went to stdout
    )


@intents.command("import")
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
    from ise_es.store.sql import open_store

    with open_store(db_url) as store:
        r = import_intents(store, file, skip_invalid=skip_invalid)
    for problem in r.invalid:
        click.echo(f"skipped {problem}", err=True)
    click.echo(
        f"imported {r.recorded} intents ({r.already_present} already present, "
        f"{len(r.invalid)} invalid lines skipped)"
    )


@intents.command("space")
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
        from ise_es.store.sql import open_store

        with open_store(db_url) as store:
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


@project.command("diversity")
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
def project_diversity(
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
    from rich.console import Console

    from ise_es.commands.diversity import run_diversity

    console = Console(stderr=True)
    if input_file is not None:
        text = run_diversity(
            store=None,
            input_file=input_file,
            source=source,
            model=model,
            q=q,
            seed=seed,
            output=output,
            plot=plot,
            console=console,
        )
    else:
        from ise_es.store.sql import open_store

        with open_store(db_url) as store:
            text = run_diversity(
                store=store,
                input_file=None,
                source=source,
                model=model,
                q=q,
                seed=seed,
                output=output,
                plot=plot,
                console=console,
            )
    click.echo(text, err=str(output) == "-")  # with -o - the JSON report has stdout


def _option_names(group: click.Group) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            for sub, options in _option_names(command).items():
                names[f"{name}.{sub}"] = options
        else:
            names[name] = {p.name for p in command.params if p.name}
    return names


def _load_config(ctx: click.Context, value: Path | None) -> None:
    from ise_es.config import DEFAULT_CONFIG, default_map

    path = value or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is None:
        return
    try:
        ctx.default_map = default_map(path, _option_names(main))
    except IseEsError as e:
        raise click.UsageError(str(e)) from e


if __name__ == "__main__":
    main()
