"""What the `ise-es intents ...` commands run, as plain functions: the persona pool made and
frozen, the pool an intent run draws from, the near-duplicate index, the size of the space.

ise_es/commands/intents.py builds the model clients from the options, shows progress and
prints; nothing here imports click or rich. numpy (dedup, embeddings) and the generator are
imported by the functions that use them, so `intents space` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

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
from ise_es.store.base import EventStore

if TYPE_CHECKING:
    from ise_es.intents.dedup import NearIndex
    from ise_es.intents.personas import PoolBuild

__all__ = [
    "make_personas",
    "near_index",
    "pick_pool",
    "space_report",
]


def make_personas(
    store: EventStore,
    *,
    count: int,
    seed: int,
    batch: int,
    client: ChatClient | None,
    progress: Callable[[PoolBuild, int], None] | None = None,
) -> tuple[PersonaPool, bool, list[str]]:
    """Generate (with the persona model's `client`, or offline with the seeded combiner when
    it is None), validate, deduplicate and freeze a pool; `progress(build, calls)` after each
    model call.

    Returns:
        (pool, newly frozen, problems worth showing)
    """
    notes: list[str] = []
    if client is None:
        build = build_pool(offline_personas(count + count // 2 + 10, seed))
        build.personas = build.personas[:count]
    else:
        from ise_es.intents.llm_render import generate_personas

        build, notes = generate_personas(client, count, seed=seed, batch=batch, progress=progress)
    if len(build.personas) < count:
        notes.append(f"only {len(build.personas)} valid distinct personas of {count} requested")
    extra = {"candidates": build.candidates, "invalid": len(build.invalid),
             "duplicates": build.duplicates}  # fmt: skip
    pool = make_pool(build.personas, extra)
    fresh = freeze_pool(store, pool)
    return pool, fresh, notes + build.invalid[:5]


def pick_pool(store: EventStore, pool_id: str | None) -> PersonaPool:
    return load_pool(store, pool_id) if pool_id else latest_pool(store)


def near_index(
    method: str,
    threshold: float | None,
    embed_model: str,
    *,
    environ: Mapping[str, str],
    note: Callable[[str], None] = lambda _text: None,
) -> NearIndex | None:
    """The near-duplicate index: `auto` uses embeddings when the model loads (from the cache
    `environ` points to), else MinHash, and says so through `note`."""
    from ise_es.intents.dedup import EmbeddingIndex, MinHashIndex
    from ise_es.intents.embeddings import Embedder, default_cache_dir

    if method == "off":
        return None
    if method in ("auto", "embedding"):
        embedder = Embedder(embed_model, cache_dir=default_cache_dir(environ))
        try:
            embedder.ensure_available()
            return EmbeddingIndex(embedder, threshold=threshold or 0.92)
        except ConfigError as e:
            if method == "embedding":
                raise
            note(f"near-duplicates: MinHash ({e})")
    return MinHashIndex(threshold=threshold or 0.8)


def space_report(store: EventStore | None, pool_id: str | None,
                 personas: int | None) -> SpaceReport:  # fmt: skip
    if personas is None:
        if store is None:
            raise ConfigError("give --personas N or a store holding a frozen pool (--db)")
        personas = len(pick_pool(store, pool_id).personas)
    return tuple_space(load_library(), personas)
