"""The persona pool: the P axis of the 4D intent space.

Personas come from a generator (an LLM, see `persona_llm`, or the seeded offline combiner here),
are validated one by one against the schema and a few consistency rules, deduplicated by
(name, role, industry), and frozen as one `PersonaPoolFrozen` event on `persona-pool-<id>` whose
id is derived from the pool's digest, so freezing the same pool twice is a no-op.

Experience levels are the paper's five (Junior, Mid-level, Senior, Expert, Executive) plus
**Student**: the agent serves personal users, and learners write requests in a register none of
the five professional levels covers (they name what they want to learn, use less precise
vocabulary and ask for explanations alongside results); leaving them out would make the pool
blind to that population.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal, get_args

import msgspec
import yaml

from ise_es.errors import ConcurrencyError, InvalidInput, IseEsError
from ise_es.events import PersonaPoolFrozen
from ise_es.store.base import EventStore

__all__ = [
    "EXPERIENCE_LEVELS",
    "ExperienceLevel",
    "Persona",
    "PersonaPool",
    "PoolBuild",
    "build_pool",
    "freeze_pool",
    "latest_pool",
    "load_pool",
    "offline_personas",
    "persona_id",
    "persona_key",
    "validate_persona",
]

ExperienceLevel = Literal["Student", "Junior", "Mid-level", "Senior", "Expert", "Executive"]
EXPERIENCE_LEVELS: tuple[str, ...] = get_args(ExperienceLevel)

_LEVEL_ALIASES = {re.sub(r"[^a-z]", "", lvl.lower()): lvl for lvl in EXPERIENCE_LEVELS} | {
    "mid": "Mid-level",
    "intermediate": "Mid-level",
    "entrylevel": "Junior",
    "lead": "Senior",
    "principal": "Expert",
    "csuite": "Executive",
}
# Words in a role that pin its seniority; a persona contradicting them is inconsistent.
_EXECUTIVE_ROLE = re.compile(r"\b(chief|ceo|cfo|cto|cio|cmo|coo|vp|vice president|president)\b")
_STUDENT_ROLE = re.compile(r"\b(student|intern|trainee|apprentice|phd candidate)\b")


class Persona(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated user. `id` is derived from (name, role, industry)."""

    id: str
    name: str
    role: str
    industry: str
    expertise: list[str]
    experience_level: ExperienceLevel
    communication_style: str
    work_context: str
    common_goals: list[str]
    tools_preference: list[str]

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)  # type: ignore[no-any-return]


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def persona_key(name: str, role: str, industry: str) -> tuple[str, str, str]:
    """The dedup key: case- and whitespace-insensitive (name, role, industry)."""
    return (_norm(name), _norm(role), _norm(industry))


def persona_id(name: str, role: str, industry: str) -> str:
    digest = hashlib.sha256("\x1f".join(persona_key(name, role, industry)).encode()).hexdigest()
    return f"persona_{digest[:12]}"


def _text(raw: Mapping[str, Any], key: str, max_len: int = 400) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"field {key!r}: a non-empty string is required")
    value = " ".join(value.split())
    if len(value) > max_len:
        raise ValueError(f"field {key!r}: longer than {max_len} characters")
    return value


def _text_list(raw: Mapping[str, Any], key: str, lo: int, hi: int) -> list[str]:
    value = raw.get(key)
    if isinstance(value, str):
        value = [part for part in re.split(r"[;,]", value) if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError(f"field {key!r}: a list of non-empty strings is required")
    items = list(dict.fromkeys(" ".join(v.split()) for v in value))
    if not lo <= len(items) <= hi:
        raise ValueError(f"field {key!r}: {lo} to {hi} distinct items required, got {len(items)}")
    return items


def validate_persona(raw: object) -> Persona:
    """Check one persona object (as an LLM or a file gave it) and normalise it.

    Raises:
        ValueError: naming the first field that is missing, malformed or inconsistent.
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"a persona must be an object, got {type(raw).__name__}")
    name = _text(raw, "name", 120)
    role = _text(raw, "role", 120)
    industry = _text(raw, "industry", 120)
    level_raw = _text(raw, "experience_level", 40)
    level = _LEVEL_ALIASES.get(re.sub(r"[^a-z]", "", level_raw.lower()))
    if level is None:
        raise ValueError(
            f"field 'experience_level': {level_raw!r} is not one of {', '.join(EXPERIENCE_LEVELS)}"
        )
    role_l = role.lower()
    if _EXECUTIVE_ROLE.search(role_l) and level not in ("Executive", "Expert"):
        raise ValueError(f"inconsistent: role {role!r} with experience level {level}")
    if _STUDENT_ROLE.search(role_l) and level not in ("Student", "Junior"):
        raise ValueError(f"inconsistent: role {role!r} with experience level {level}")
    if level == "Student" and _EXECUTIVE_ROLE.search(role_l):
        raise ValueError(f"inconsistent: role {role!r} with experience level Student")
    style = _text(raw, "communication_style", 60)
    return Persona(
        id=persona_id(name, role, industry),
        name=name,
        role=role,
        industry=industry,
        expertise=_text_list(raw, "expertise", 1, 10),
        experience_level=level,  # type: ignore[arg-type]
        communication_style=style[:1].upper() + style[1:],
        work_context=_text(raw, "work_context", 400),
        common_goals=_text_list(raw, "common_goals", 1, 8),
        tools_preference=_text_list(raw, "tools_preference", 0, 12),
    )


@dataclass
class PoolBuild:
    """The outcome of validating and deduplicating candidate personas."""

    personas: list[Persona] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    """One message per rejected candidate."""
    duplicates: int = 0
    candidates: int = 0
    _seen: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, candidates: Iterable[object]) -> None:
        """Validate and deduplicate more candidates (the first of each key is kept)."""
        for raw in candidates:
            self.candidates += 1
            try:
                p = validate_persona(raw)
            except ValueError as e:
                self.invalid.append(f"candidate {self.candidates}: {e}")
                continue
            key = persona_key(p.name, p.role, p.industry)
            if key in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(key)
            self.personas.append(p)


def build_pool(candidates: Iterable[object]) -> PoolBuild:
    """Validate and deduplicate candidates, keeping the first of each (name, role, industry)."""
    build = PoolBuild()
    build.add(candidates)
    return build


class PersonaPool(msgspec.Struct, frozen=True, kw_only=True):
    pool_id: str
    digest: str
    personas: tuple[Persona, ...]
    counts: dict[str, int]

    def by_id(self) -> dict[str, Persona]:
        return {p.id: p for p in self.personas}


def _digest(personas: Sequence[Persona]) -> str:
    ordered = sorted((p.to_dict() for p in personas), key=lambda d: d["id"])
    return hashlib.sha256(msgspec.json.encode(ordered)).hexdigest()


def pool_counts(personas: Sequence[Persona]) -> dict[str, int]:
    """The realised diversity of a pool (distinct values per attribute)."""
    return {
        "personas": len(personas),
        "industries": len({_norm(p.industry) for p in personas}),
        "roles": len({_norm(p.role) for p in personas}),
        "communication_styles": len({_norm(p.communication_style) for p in personas}),
        "experience_levels": len({p.experience_level for p in personas}),
        "names": len({_norm(p.name) for p in personas}),
    } | {
        f"level:{lvl}": sum(p.experience_level == lvl for p in personas)
        for lvl in EXPERIENCE_LEVELS
    }


def make_pool(personas: Sequence[Persona], extra_counts: Mapping[str, int] = {}) -> PersonaPool:
    if not personas:
        raise InvalidInput("a persona pool needs at least one valid persona")
    ordered = tuple(sorted(personas, key=lambda p: p.id))
    digest = _digest(ordered)
    return PersonaPool(
        pool_id=digest[:12],
        digest=digest,
        personas=ordered,
        counts=pool_counts(ordered) | dict(extra_counts),
    )


def freeze_pool(store: EventStore, pool: PersonaPool) -> bool:
    """Record the pool on `persona-pool-<id>`; False when that exact pool was already frozen."""
    event = PersonaPoolFrozen(
        pool_id=pool.pool_id,
        personas=[p.to_dict() for p in pool.personas],
        digest=pool.digest,
        counts=pool.counts,
    )
    try:
        store.append(f"persona-pool-{pool.pool_id}", [event], expected_version=0)
    except ConcurrencyError:
        return False
    return True


def load_pool(store: EventStore, pool_id: str) -> PersonaPool:
    """Read a frozen pool back, checking its digest.

    Raises:
        InvalidInput: no such pool, or its content does not match its digest.
    """
    events = store.read_stream(f"persona-pool-{pool_id}")
    frozen = [e.data for e in events if isinstance(e.data, PersonaPoolFrozen)]
    if not frozen:
        raise InvalidInput(
            f"no persona pool {pool_id!r} in the store: run `ise-es intents personas` first"
        )
    ev = frozen[0]
    try:
        personas = tuple(msgspec.convert(p, Persona) for p in ev.personas)
    except msgspec.ValidationError as e:
        raise IseEsError(f"persona pool {pool_id}: stored persona does not decode: {e}") from e
    if _digest(personas) != ev.digest:
        raise IseEsError(f"persona pool {pool_id}: content does not match its digest")
    return PersonaPool(pool_id=ev.pool_id, digest=ev.digest, personas=personas, counts=ev.counts)


def latest_pool(store: EventStore) -> PersonaPool:
    """The most recently frozen pool.

    Raises:
        InvalidInput: the store holds no pool.
    """
    streams = store.streams(stream_type="persona-pool")
    if not streams:
        raise InvalidInput(
            "the store holds no persona pool: run `ise-es intents personas --count N` first"
        )
    newest = max(streams, key=lambda s: (s.created_at, s.stream_id))
    return load_pool(store, newest.stream_id.removeprefix("persona-pool-"))


# --------------------------------------------------------------------------------------------
# Offline generator
# --------------------------------------------------------------------------------------------


class _Role(msgspec.Struct, frozen=True):
    role: str
    levels: list[ExperienceLevel]
    expertise: list[str]


class _Industry(msgspec.Struct, frozen=True):
    name: str
    goals: list[str]
    tools: list[str]
    roles: list[_Role]


class _Contexts(msgspec.Struct, frozen=True):
    employed: list[str]
    freelance: list[str]
    student: list[str]


class _Parts(msgspec.Struct, frozen=True):
    first_names: list[str]
    last_names: list[str]
    regions: list[str]
    styles: list[str]
    industries: list[_Industry]
    work_contexts: _Contexts
    sizes: list[str]


@cache
def _parts() -> _Parts:
    raw = resources.files("ise_es.intents").joinpath("data/persona_parts.yaml").read_bytes()
    return msgspec.convert(yaml.safe_load(raw), _Parts)


def offline_personas(count: int, seed: int) -> list[dict[str, Any]]:
    """`count` persona candidates combined from the shipped parts, reproducibly from `seed`.

    Only consistent combinations are produced (a role's own levels; freelancing never for
    executives; students study). Candidates may repeat a (name, role, industry) key; the pool
    builder drops those, so ask for a few more than you need.
    """
    parts = _parts()
    rng = random.Random(f"offline-personas:{seed}")
    out: list[dict[str, Any]] = []
    for _ in range(count):
        ind = rng.choice(parts.industries)
        role = rng.choice(ind.roles)
        level = rng.choice(role.levels)
        if level == "Student":
            contexts = parts.work_contexts.student
        elif level == "Executive":
            contexts = parts.work_contexts.employed
        else:
            contexts = parts.work_contexts.employed + parts.work_contexts.freelance
        context = rng.choice(contexts).format(
            region=rng.choice(parts.regions),
            size=rng.choice(parts.sizes),
            industry_lower=ind.name.lower(),
        )
        out.append(
            {
                "name": f"{rng.choice(parts.first_names)} {rng.choice(parts.last_names)}",
                "role": role.role,
                "industry": ind.name,
                "expertise": rng.sample(role.expertise, k=rng.randint(2, len(role.expertise))),
                "experience_level": level,
                "communication_style": rng.choice(parts.styles),
                "work_context": context,
                "common_goals": rng.sample(ind.goals, k=rng.randint(1, len(ind.goals))),
                "tools_preference": rng.sample(ind.tools, k=rng.randint(1, 3)),
            }
        )
    return out
