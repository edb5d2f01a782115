"""The seeded 4D sampler: distributions, reproducibility and the tuple-space count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from math import comb
from typing import Any

import pytest

from ise_es.intents.library import load_library
from ise_es.intents.personas import PersonaPool, build_pool, make_pool, offline_personas
from ise_es.intents.sampler import Sampler, _covering_subsets, intent_id_for, tuple_space

N = 10_000


@pytest.fixture(scope="module")
def pool() -> PersonaPool:
    return make_pool(build_pool(offline_personas(60, seed=3)).personas)


@pytest.fixture(scope="module")
def draws(pool: PersonaPool) -> list:  # type: ignore[type-arg]
    sampler = Sampler(load_library(), pool, seed=42)
    return [sampler.sample(i) for i in range(N)]


def chi_square(observed: Mapping[Any, int], expected: Mapping[Any, float]) -> float:
    return sum((observed.get(k, 0) - N * p) ** 2 / (N * p) for k, p in expected.items())


# Critical values of chi-square at p = 0.001 (a seeded run; the margin guards a wrong prior,
# not luck): 2 dof 13.82, 1 dof 10.83, 3 dof 16.27.


def test_complexity_follows_the_prior(draws: list) -> None:  # type: ignore[type-arg]
    observed = Counter(d.complexity for d in draws)
    assert chi_square(observed, {"simple": 0.1, "medium": 0.4, "complex": 0.5}) < 13.82
    # and a wrong prior (uniform) is clearly rejected by the same test
    assert chi_square(observed, {"simple": 1 / 3, "medium": 1 / 3, "complex": 1 / 3}) > 100


def test_subset_sizes(draws: list) -> None:  # type: ignore[type-arg]
    domains = Counter(len(d.domains) for d in draws)
    tasks = Counter(len(d.tasks) for d in draws)
    assert set(domains) == {2, 3} and set(tasks) == {3, 4, 5, 6}
    assert chi_square(domains, {2: 0.5, 3: 0.5}) < 10.83
    assert chi_square(tasks, {k: 0.25 for k in (3, 4, 5, 6)}) < 16.27


def test_structure_of_every_draw(draws: list, pool: PersonaPool) -> None:  # type: ignore[type-arg]
    lib = load_library()
    persona_ids = {p.id for p in pool.personas}
    for d in draws:
        assert d.persona_id in persona_ids
        assert len(set(d.domains)) == len(d.domains)
        task_domains = [lib.task(t).domain for t in d.tasks]
        assert set(task_domains) == set(d.domains)  # every domain contributes a task
        assert len(set(d.tasks)) == len(d.tasks)
        assert d.tools == lib.tools_for(d.tasks)
    # all domains and nearly all personas are reached
    assert len({x for d in draws for x in d.domains}) == 10
    assert len({d.persona_id for d in draws}) == len(persona_ids)
    assert len({d.intent_id for d in draws}) == N


def test_reproducible_from_seed_and_index(pool: PersonaPool, draws: list) -> None:  # type: ignore[type-arg]
    again = Sampler(load_library(), pool, seed=42)
    assert [again.sample(i) for i in (9_999, 3, 500)] == [draws[9_999], draws[3], draws[500]]
    other = Sampler(load_library(), pool, seed=43)
    assert other.sample(3) != draws[3]
    assert draws[3].intent_id == intent_id_for(42, pool.digest, 3)


def test_tuple_space_counts_like_the_paper() -> None:
    lib = load_library()
    space = tuple_space(lib, personas=1000)
    assert space.domain_subsets == {2: 45, 3: 120}
    assert space.domain_subset_total == 165
    sizes = [len(d.tasks) for d in lib.domains]
    # brute force of the paper's sum, written independently of the implementation
    expected = 0
    for i in range(10):
        for j in range(i + 1, 10):
            expected += sum(comb(sizes[i] + sizes[j], k) for k in range(3, 7))
            for m in range(j + 1, 10):
                expected += sum(comb(sizes[i] + sizes[j] + sizes[m], k) for k in range(3, 7))
    assert space.task_subsets == expected
    assert space.total == expected * 3 * 1000
    assert 0 < space.task_subsets_covering < space.task_subsets


def test_covering_subsets_by_enumeration() -> None:
    from itertools import combinations

    groups = [0, 0, 1, 1, 1, 2, 2]  # three disjoint groups of sizes 2, 3, 2
    for k in range(1, 8):
        brute = sum(1 for c in combinations(groups, k) if set(c) == {0, 1, 2})
        assert _covering_subsets([2, 3, 2], k) == brute
