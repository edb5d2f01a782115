"""The seeded 4D sampler (Persona x Domain x Task x Complexity) and the size of its space.

Every draw takes its randomness from ``Random(f"{seed}:{pool digest}:{index}")``, so intent
number `index` of a run is the same whatever the order, the number of workers or a resume in
between, and its id is derived from the same three values.

Draw, per intent:
- persona: uniform over the frozen pool;
- domains: 2 or 3 with equal probability, then a uniform subset of that size;
- tasks: 3 to 6 with equal probability; one task from each chosen domain first (so every
  domain is really part of the request), the rest uniform over the remaining tasks of those
  domains;
- complexity: simple 10% / medium 40% / complex 50% (the paper's prior);
- tools: derived from the tasks (their union, in the tool registry's order).
"""

from __future__ import annotations

import hashlib
import random
from itertools import combinations
from math import comb

import msgspec

from ise_es.intents.library import Library
from ise_es.intents.personas import PersonaPool

__all__ = [
    "COMPLEXITY_PRIOR",
    "DOMAIN_COUNTS",
    "TASK_COUNTS",
    "SampledIntent",
    "Sampler",
    "SpaceReport",
    "intent_id_for",
    "tuple_space",
]

COMPLEXITY_PRIOR: dict[str, float] = {"simple": 0.10, "medium": 0.40, "complex": 0.50}
DOMAIN_COUNTS: tuple[int, ...] = (2, 3)
TASK_COUNTS: tuple[int, ...] = (3, 4, 5, 6)


class SampledIntent(msgspec.Struct, frozen=True, kw_only=True):
    intent_id: str
    index: int
    seed: int
    persona_id: str
    domains: list[str]
    tasks: list[str]
    complexity: str
    tools: list[str]
    pool_id: str
    pool_digest: str


def intent_id_for(seed: int, pool_digest: str, index: int) -> str:
    digest = hashlib.sha256(f"{pool_digest}:{seed}:{index}".encode()).hexdigest()
    return f"intent_{digest[:12]}"


class Sampler:
    """Draws intent tuples reproducibly from (seed, pool, index)."""

    def __init__(self, library: Library, pool: PersonaPool, seed: int) -> None:
        if not pool.personas:
            raise ValueError("the persona pool is empty")
        self.library = library
        self.pool = pool
        self.seed = seed
        self._levels = list(COMPLEXITY_PRIOR)
        self._weights = list(COMPLEXITY_PRIOR.values())

    def rng_for(self, index: int) -> random.Random:
        """The generator for intent `index` (also used to fill its concrete parameters)."""
        return random.Random(f"{self.seed}:{self.pool.digest}:{index}")

    def sample(self, index: int) -> SampledIntent:
        rng = self.rng_for(index)
        lib = self.library
        persona = rng.choice(self.pool.personas)
        n_domains = rng.choice(DOMAIN_COUNTS)
        order = {d: i for i, d in enumerate(lib.domain_ids)}
        chosen = sorted(rng.sample(lib.domain_ids, n_domains), key=order.__getitem__)
        n_tasks = rng.choice(TASK_COUNTS)
        picked = [rng.choice(lib.domain(d).tasks).id for d in chosen]
        rest = [t.id for d in chosen for t in lib.domain(d).tasks if t.id not in picked]
        picked += rng.sample(rest, n_tasks - len(picked))
        task_order = {t.id: i for i, t in enumerate(t for d in lib.domains for t in d.tasks)}
        tasks = sorted(picked, key=task_order.__getitem__)
        complexity = rng.choices(self._levels, weights=self._weights)[0]
        return SampledIntent(
            intent_id=intent_id_for(self.seed, self.pool.digest, index),
            index=index,
            seed=self.seed,
            persona_id=persona.id,
            domains=chosen,
            tasks=tasks,
            complexity=complexity,
            tools=lib.tools_for(tasks),
            pool_id=self.pool.pool_id,
            pool_digest=self.pool.digest,
        )


class SpaceReport(msgspec.Struct, frozen=True, kw_only=True):
    """The factors of the tuple space, the way the paper multiplies them out."""

    domains: int
    domain_subsets: dict[int, int]
    """Subset size -> count (C(10,2) = 45, C(10,3) = 120)."""
    task_subsets: int
    """Sum over domain subsets of the 3..6-task subsets of their tasks (the paper's count)."""
    task_subsets_covering: int
    """The same, restricted to subsets with a task in every chosen domain (what we sample)."""
    complexities: int
    personas: int

    @property
    def domain_subset_total(self) -> int:
        return sum(self.domain_subsets.values())

    @property
    def total(self) -> int:
        return self.task_subsets * self.complexities * self.personas

    @property
    def total_covering(self) -> int:
        return self.task_subsets_covering * self.complexities * self.personas


def _covering_subsets(sizes: list[int], k: int) -> int:
    """k-subsets of disjoint groups of `sizes` that touch every group (inclusion-exclusion)."""
    total = sum(sizes)
    count = 0
    for r in range(len(sizes) + 1):
        for left_out in combinations(sizes, r):
            count += (-1) ** r * comb(total - sum(left_out), k)
    return count


def tuple_space(library: Library, personas: int) -> SpaceReport:
    sizes = {d.id: len(d.tasks) for d in library.domains}
    subsets: dict[int, int] = {}
    task_subsets = 0
    covering = 0
    for m in DOMAIN_COUNTS:
        subsets[m] = comb(len(sizes), m)
        for combo in combinations(sizes.values(), m):
            for k in TASK_COUNTS:
                task_subsets += comb(sum(combo), k)
                covering += _covering_subsets(list(combo), k)
    return SpaceReport(
        domains=len(sizes),
        domain_subsets=subsets,
        task_subsets=task_subsets,
        task_subsets_covering=covering,
        complexities=len(COMPLEXITY_PRIOR),
        personas=personas,
    )
