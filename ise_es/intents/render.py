"""Turning a sampled tuple into a user request: concrete parameters, validation, templates.

Both renderers start from the same `RenderSpec`: the persona, the tasks, and each task's ask with
its placeholders filled from the intent's own seeded generator (file names, thresholds, counts),
so the LLM and the template renderer give the same concrete parameters for the same intent.

`check_request` is the one validator every rendered text passes: non-empty, a request rather
than a question back, and mentioning every task (one of its keywords, prefix-matched).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Protocol

import msgspec

from ise_es.events import ModelCall
from ise_es.intents.library import Library, Task
from ise_es.intents.personas import Persona
from ise_es.intents.sampler import SampledIntent

__all__ = [
    "TEMPLATE_LABEL",
    "RenderOutcome",
    "RenderSpec",
    "Renderer",
    "TemplateRenderer",
    "check_request",
    "fill_placeholders",
    "make_spec",
    "neutral_description",
]

TEMPLATE_LABEL = "[template-rendered intent]"
"""Prefix of every template text, so offline output is never mistaken for model output."""

_STEMS = {
    "csv": ["sales_q3", "customers", "orders_2024", "survey_results", "metrics_daily", "inventory"],
    "json": ["events", "config_dump", "api_response", "catalog"],
    "md": ["status_report", "vendor_options", "README", "weekly_notes", "announcement"],
    "txt": ["requirements", "transcript", "contacts", "claims", "sha256sums"],
    "py": ["parser", "pipeline", "report_builder", "utils", "ingest"],
    "log": ["app", "nginx_access", "worker", "syslog"],
    "yaml": ["settings", "deploy", "service"],
    "zip": ["export_batch", "photos_2023", "archive"],
    "sh": ["backup", "deploy", "rotate_logs"],
    "mov": ["interview_raw", "demo_take2"],
    "mp4": ["webinar", "lecture_05"],
    "wav": ["podcast_ep12", "voice_memo"],
    "pdf": ["contract", "annual_report", "scan_0042"],
}
_DIRS = [
    "reports/2024",
    "data/raw",
    "~/Downloads",
    "projects/atlas",
    "photos/trip",
    "src",
    "inbox",
    "shared/finance",
    "assets/images",
    "logs",
]
_HOSTS = [
    "docs.example.org",
    "shop.example.com",
    "data.example.net",
    "news.example.org",
    "status.example.io",
]
_PATHS = ["pricing", "api/v2/auth", "datasets/weather.csv", "careers", "changelog", "contact"]
_NAMES = [
    "Atlas",
    "Project Heron",
    "Bluebird",
    "the Q3 launch",
    "Nimbus",
    "Orion portal",
    "Kestrel",
    "the onboarding revamp",
    "Lumen",
    "Harbor",
]
_TOPICS = [
    "heat pumps",
    "battery recycling",
    "remote work policy",
    "open-source licensing",
    "urban cycling",
    "LLM evaluation",
    "supply chain risk",
    "solar microgrids",
    "food waste",
    "accessibility audits",
]
_PEOPLE = [
    "Maria Lopez",
    "Daniel Osei",
    "Wei Zhang",
    "Priya Nair",
    "Lars Eriksen",
    "Fatou Diallo",
    "Tom Becker",
    "Aiko Mori",
]

_PLACEHOLDER = re.compile(r"\{([a-z]+)(?::([^{}]*))?\}")
_NEUTRAL = {
    "n": "a given number",
    "pct": "a given percentage",
    "dir": "a folder",
    "url": "a web page",
    "name": "a project",
    "time": "a set time",
    "topic": "a topic",
    "person": "a colleague",
}


def _value(kind: str, arg: str | None, rng: random.Random) -> str:
    if kind in ("n", "pct"):
        lo, hi = (int(x) for x in (arg or "0-0").split("-"))
        value = rng.randint(lo, hi)
        return f"{value}%" if kind == "pct" else str(value)
    if kind == "file":
        ext = arg or "txt"
        return f"{rng.choice(_STEMS.get(ext, ['data']))}.{ext}"
    if kind == "dir":
        return rng.choice(_DIRS)
    if kind == "url":
        return f"https://{rng.choice(_HOSTS)}/{rng.choice(_PATHS)}"
    if kind == "name":
        return rng.choice(_NAMES)
    if kind == "time":
        return f"{rng.randint(6, 21):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    if kind == "topic":
        return rng.choice(_TOPICS)
    if kind == "person":
        return rng.choice(_PEOPLE)
    raise ValueError(f"unknown placeholder kind {kind!r}")


def fill_placeholders(text: str, rng: random.Random) -> str:
    """Replace each placeholder with a concrete value drawn from `rng`."""
    return _PLACEHOLDER.sub(lambda m: _value(m.group(1), m.group(2), rng), text)


def neutral_description(text: str) -> str:
    """A task description with placeholders in words (for exports: no invented values)."""

    def word(m: re.Match[str]) -> str:
        kind, arg = m.group(1), m.group(2)
        return f"a .{arg} file" if kind == "file" else _NEUTRAL.get(kind, kind)

    return _PLACEHOLDER.sub(word, text)


class RenderSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a renderer needs for one intent."""

    intent: SampledIntent
    persona: Persona
    tasks: tuple[Task, ...]
    asks: tuple[str, ...]
    """Each task's description with concrete values, in task order."""
    domain_names: tuple[str, ...]


def make_spec(
    library: Library, persona: Persona, intent: SampledIntent, rng: random.Random
) -> RenderSpec:
    """Build the render input; `rng` should be the sampler's generator for this index, after
    the draw, so parameters are reproducible too."""
    tasks = tuple(library.task(t) for t in intent.tasks)
    return RenderSpec(
        intent=intent,
        persona=persona,
        tasks=tasks,
        asks=tuple(fill_placeholders(t.description, rng) for t in tasks),
        domain_names=tuple(library.domain(d).name for d in intent.domains),
    )


class RenderOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """A renderer's result: `text` is None when every attempt failed validation."""

    text: str | None
    renderer: str
    model: str | None = None
    attempts: int = 1
    problems: list[str] = []
    """Why each rejected attempt was rejected, in order."""
    model_calls: list[ModelCall] = []
    """One event per model call made (recorded on the intent's stream); none for templates."""
    blobs: list[bytes] = []
    """Request bodies the ModelCall events refer to by digest."""


class Renderer(Protocol):
    name: str

    def render(self, spec: RenderSpec) -> RenderOutcome: ...


_QUESTION_BACK = re.compile(
    r"^(could|can|would|will) you (clarify|tell me|provide|specify|share)|"
    r"^(what|which|how|when|where|who|why|do|does|did|is|are)\b[^.!]*\?$|"
    r"^(i need more information|please clarify|sorry,? (but )?i)",
    re.IGNORECASE,
)


def _stem_match(keyword: str, words: Sequence[str], text: str) -> bool:
    if " " in keyword or "-" in keyword:
        return keyword in text
    return any(w.startswith(keyword) for w in words)


def check_request(text: str, tasks: Sequence[Task], *, min_words: int = 12) -> str | None:
    """Why `text` is not an acceptable user request for `tasks`, or None if it is."""
    stripped = text.strip()
    if not stripped:
        return "empty text"
    lowered = stripped.lower()
    words = re.findall(r"[a-z0-9][a-z0-9_']*", lowered)
    if len(words) < min_words:
        return f"too short ({len(words)} words, at least {min_words} wanted)"
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", stripped) if s.strip()]
    if _QUESTION_BACK.search(stripped) or (sentences and all(s.endswith("?") for s in sentences)):
        return "a question back to the user, not a request"
    missing = [t.id for t in tasks if not any(_stem_match(k, words, lowered) for k in t.keywords)]
    if missing:
        return f"does not mention task(s): {', '.join(missing)}"
    return None


_OPENERS = {
    "Formal": "Good day. I would like your assistance with the following.",
    "Collaborative": "Hi! Could we work through this together?",
    "Direct": "Here is what I need.",
    "Analytical": "I have a precise set of steps in mind.",
    "Casual": "Hey, got a few things for you.",
    "Concise": "Tasks below.",
    "Detail-oriented": "Please follow these steps carefully and in order.",
    "Inquisitive": "I'd like to get this done and understand the result.",
}
_COMPLEXITY_NOTE = {
    "simple": "This should be quick.",
    "medium": "Take the steps in order and check each result before moving on.",
    "complex": (
        "This is a multi-step job: later steps depend on earlier outputs, so verify each "
        "intermediate file and tell me about anything that fails."
    ),
}


class TemplateRenderer:
    """Deterministic, clearly labelled text for offline runs (no model)."""

    name = "template"

    def render(self, spec: RenderSpec) -> RenderOutcome:
        p = spec.persona
        opener = _OPENERS.get(p.communication_style, "Here is what I need.")
        steps = " ".join(
            f"{i}. {t.name}: {ask}."
            for i, (t, ask) in enumerate(zip(spec.tasks, spec.asks, strict=True), 1)
        )
        text = (
            f"{TEMPLATE_LABEL} {opener} I'm {p.name}, a {p.experience_level.lower()} {p.role} "
            f"in {p.industry} ({p.work_context}). This touches {' and '.join(spec.domain_names)}. "
            f"{_COMPLEXITY_NOTE.get(spec.intent.complexity, '')} {steps} "
            f"My goal: {p.common_goals[0]}."
        )
        problem = check_request(text, spec.tasks)
        return RenderOutcome(
            text=None if problem else text,
            renderer=self.name,
            attempts=1,
            problems=[problem] if problem else [],
        )
