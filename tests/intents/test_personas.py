"""Persona validation, consistency rules, dedup and the offline generator."""

from __future__ import annotations

from typing import Any

import pytest

from ise_es.intents.personas import (
    EXPERIENCE_LEVELS,
    build_pool,
    make_pool,
    offline_personas,
    persona_id,
    validate_persona,
)


def raw(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Amara Okafor",
        "role": "Backend Engineer",
        "industry": "Software",
        "expertise": ["Python", "APIs"],
        "experience_level": "Senior",
        "communication_style": "direct",
        "work_context": "works remotely from Lagos",
        "common_goals": ["ship faster"],
        "tools_preference": ["git"],
    }
    return base | over


def test_valid_persona_is_normalised() -> None:
    p = validate_persona(raw(experience_level="mid level", expertise=["Python", "Python", "SQL"]))
    assert p.experience_level == "Mid-level"
    assert p.expertise == ["Python", "SQL"]
    assert p.communication_style == "Direct"
    assert p.id == persona_id("amara okafor", "BACKEND  engineer", "software")


def test_six_levels_with_student() -> None:
    assert EXPERIENCE_LEVELS == ("Student", "Junior", "Mid-level", "Senior", "Expert", "Executive")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": ""}, "field 'name'"),
        ({"role": None}, "field 'role'"),
        ({"experience_level": "Wizard"}, "'Wizard' is not one of"),
        ({"expertise": []}, "field 'expertise': 1 to 10"),
        ({"expertise": [1, 2]}, "field 'expertise': a list of non-empty strings"),
        ({"common_goals": "x" * 0}, "field 'common_goals'"),
        ({"role": "Chief Technology Officer", "experience_level": "Junior"}, "inconsistent"),
        ({"role": "Marketing Intern", "experience_level": "Senior"}, "inconsistent"),
    ],
)
def test_invalid_personas_name_the_field(override: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_persona(raw(**override))


def test_not_an_object() -> None:
    with pytest.raises(ValueError, match="must be an object"):
        validate_persona(["a list"])


def test_build_pool_drops_invalid_and_duplicates_by_name_role_industry() -> None:
    build = build_pool(
        [
            raw(),
            raw(name="AMARA  okafor", communication_style="Formal"),  # same key
            raw(industry="Finance"),  # different industry: kept
            raw(experience_level="?"),
        ]
    )
    assert [p.industry for p in build.personas] == ["Software", "Finance"]
    assert build.duplicates == 1
    assert len(build.invalid) == 1 and build.invalid[0].startswith("candidate 4:")


def test_pool_digest_is_order_independent_and_counts_are_realised() -> None:
    personas = build_pool([raw(), raw(industry="Finance", communication_style="Casual")]).personas
    a = make_pool(personas)
    b = make_pool(list(reversed(personas)))
    assert a.digest == b.digest and a.pool_id == a.digest[:12]
    assert a.counts["personas"] == 2
    assert a.counts["industries"] == 2
    assert a.counts["communication_styles"] == 2
    assert a.counts["roles"] == 1


def test_offline_generator_is_seeded_consistent_and_diverse() -> None:
    one = offline_personas(300, seed=7)
    assert one == offline_personas(300, seed=7)
    assert one != offline_personas(300, seed=8)
    build = build_pool(one)
    assert not build.invalid  # every combination passes the consistency rules
    pool = make_pool(build.personas)
    assert pool.counts["industries"] >= 12
    assert pool.counts["experience_levels"] == 6
    assert pool.counts["communication_styles"] == 8
    for p in pool.personas:
        if p.experience_level == "Executive":
            assert "freelances" not in p.work_context
        if p.experience_level == "Student":
            assert "stud" in p.work_context
