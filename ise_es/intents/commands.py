"""What the `ise-es intents ...` commands do, behind the CLI.

cli.py parses options and calls these; they wire the library together (store, models, progress
display) and return what the CLI prints. Errors are ise-es errors with messages that say what
to do next.

Only what every command here needs is imported at the top: numpy (dedup, embeddings), the
generator and rich are imported by the functions that use them, so `intents space` starts in
a fraction of the time `intents generate` takes to load.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ise_es.errors import ConfigError
from ise_es.intents.library import load_library
from ise_es.intents.personas import (
    PersonaPool,
    build_pool,
    freeze_pool,
    latest_pool,
    load_pool,
    make_pool,
    offline_personas,
)
from ise_es.intents.sampler import SpaceReport, tuple_space
from ise_es.llm.base import ChatClient
from ise_es.llm.roles import role_config_from_options
from ise_es.store.base import EventStore

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from ise_es.intents.dedup import NearIndex
    from ise_es.intents.generate import GenerateReport
    from ise_es.intents.render import Renderer

__all__ = [
    "make_personas",
    "run_generate",
    "space_report",
]


def _client(role: str, roles: Mapping[str, Any]) -> ChatClient:
    from ise_es.llm.openai_client import OpenAIChatClient

    return OpenAIChatClient(role_config_from_options(role, roles, os.environ), environ=os.environ)


def _progress(label: str, console: Console) -> Progress:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
    )


def make_personas(
    store: EventStore,
    *,
    count: int,
    generator: str,
    seed: int,
    batch: int,
    roles: Mapping[str, Any],
    console: Console,
) -> tuple[PersonaPool, bool, list[str]]:
    """Generate, validate, deduplicate and freeze a pool.

    Returns:
        (pool, newly frozen, problems worth showing)
    """
    notes: list[str] = []
    if generator == "offline":
        build = build_pool(offline_personas(count + count // 2 + 10, seed))
        build.personas = build.personas[:count]
    else:
        if not roles.get("persona_model"):
            raise ConfigError(
                "--generator llm needs --persona-model (and --persona-base-url); "
                "use --generator offline for the seeded offline combiner"
            )
        from ise_es.intents.llm_render import generate_personas

        client = _client("persona", roles)
        progress = _progress("personas", console)
        task = progress.add_task("personas", total=count, detail="")
        try:
            with progress:
                build, notes = generate_personas(
                    client,
                    count,
                    seed=seed,
                    batch=batch,
                    progress=lambda b, calls: progress.update(
                        task,
                        completed=min(len(b.personas), count),
                        detail=f"calls {calls}  invalid {len(b.invalid)}  dup {b.duplicates}",
                    ),
                )
        finally:
            client.close()
    if len(build.personas) < count:
        notes.append(f"only {len(build.personas)} valid distinct personas of {count} requested")
    extra = {"candidates": build.candidates, "invalid": len(build.invalid),
             "duplicates": build.duplicates}  # fmt: skip
    pool = make_pool(build.personas, extra)
    fresh = freeze_pool(store, pool)
    return pool, fresh, notes + build.invalid[:5]


def pick_pool(store: EventStore, pool_id: str | None) -> PersonaPool:
    return load_pool(store, pool_id) if pool_id else latest_pool(store)


def near_index(method: str, threshold: float | None, embed_model: str,
               console: Console) -> NearIndex | None:  # fmt: skip
    """The near-duplicate index: `auto` uses embeddings when the model loads, else MinHash."""
    from ise_es.intents.dedup import EmbeddingIndex, MinHashIndex
    from ise_es.intents.embeddings import Embedder, default_cache_dir

    if method == "off":
        return None
    if method in ("auto", "embedding"):
        embedder = Embedder(embed_model, cache_dir=default_cache_dir(os.environ))
        try:
            embedder.ensure_available()
            return EmbeddingIndex(embedder, threshold=threshold or 0.92)
        except ConfigError as e:
            if method == "embedding":
                raise
            console.print(f"near-duplicates: MinHash ({e})", style="dim")
    return MinHashIndex(threshold=threshold or 0.8)


def run_generate(
    store: EventStore,
    *,
    count: int,
    seed: int,
    renderer_name: str,
    workers: int,
    pool_id: str | None,
    near: str,
    threshold: float | None,
    embed_model: str,
    roles: Mapping[str, Any],
    console: Console,
) -> GenerateReport:
    from ise_es.intents.dedup import Deduplicator
    from ise_es.intents.generate import generate_intents
    from ise_es.intents.render import TemplateRenderer

    pool = pick_pool(store, pool_id)
    library = load_library()
    renderer: Renderer
    client: ChatClient | None = None
    if renderer_name == "template":
        renderer = TemplateRenderer()
    else:
        if not roles.get("render_model"):
            raise ConfigError(
                "--renderer llm needs --render-model (and --render-base-url); "
                "use --renderer template to run offline"
            )
        from ise_es.intents.llm_render import LLMRenderer

        client = _client("render", roles)
        renderer = LLMRenderer(client)
    if near == "auto" and renderer_name == "template":
        # Template texts share most of their words by construction; sentence embeddings put
        # them all close together, so only shingle overlap separates them meaningfully.
        near = "minhash"
    dedup = Deduplicator(near_index(near, threshold, embed_model, console))
    progress = _progress("intents", console)
    task = progress.add_task("intents", total=count, detail="")

    def show(r: GenerateReport) -> None:
        progress.update(
            task,
            completed=min(r.accepted, count),
            detail=f"drawn {r.draws}  duplicates {r.duplicates}  invalid {r.invalid}",
        )

    try:
        with progress:
            return generate_intents(
                store,
                library=library,
                pool=pool,
                renderer=renderer,
                dedup=dedup,
                count=count,
                seed=seed,
                workers=workers,
                progress=show,
            )
    finally:
        if client is not None:
            client.close()


def space_report(store: EventStore | None, pool_id: str | None,
                 personas: int | None) -> SpaceReport:  # fmt: skip
    if personas is None:
        if store is None:
            raise ConfigError("give --personas N or a store holding a frozen pool (--db)")
        personas = len(pick_pool(store, pool_id).personas)
    return tuple_space(load_library(), personas)
