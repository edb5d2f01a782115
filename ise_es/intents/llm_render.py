"""The model-backed parts of Stage 1: the intent renderer and the persona generator.

Both reach their model through `ise_es.llm.ChatClient` (roles `render` and `persona`). The
renderer asks for the request in the persona's voice with the concrete parameters of the
spec, validates it with `check_request`, and on failure tells the model what was wrong and asks
once more; every call (failed ones too) becomes a ModelCall event on the intent's stream.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

import msgspec

from ise_es.errors import LLMError
from ise_es.events import ModelCall
from ise_es.intents.personas import EXPERIENCE_LEVELS, PoolBuild
from ise_es.intents.render import RenderOutcome, RenderSpec, check_request
from ise_es.llm.base import ChatClient, Message, RequestInfo, failed_model_call

__all__ = ["LLMRenderer", "generate_personas", "render_prompt"]

_RENDER_SYSTEM = (
    "You write realistic requests that a user types to an AI assistant that can run shell "
    "commands, edit files, browse the web, keep notes and schedule jobs on the user's "
    "computer. You write AS the user, in the first person, in the user's own voice. Output "
    "only the request itself: no preamble, no quotes, no headings, no explanation."
)

_COMPLEXITY = {
    "simple": "a short, direct request (about 60-100 words) whose steps are independent",
    "medium": "a request of about 100-140 words whose steps build on each other",
    "complex": (
        "a request of about 120-160 words with dependent steps, at least one condition or "
        "threshold to check, and a concrete deliverable at the end"
    ),
}


def render_prompt(spec: RenderSpec) -> str:
    p = spec.persona
    steps = "\n".join(
        f"- {t.name} ({t.id}): {ask}" for t, ask in zip(spec.tasks, spec.asks, strict=True)
    )
    return (
        f"The user:\n"
        f"- {p.name}, {p.role} in {p.industry} ({p.experience_level}); {p.work_context}\n"
        f"- expertise: {', '.join(p.expertise)}\n"
        f"- communication style: {p.communication_style}\n"
        f"- goals: {'; '.join(p.common_goals)}\n"
        f"- prefers: {', '.join(p.tools_preference) or 'no particular tools'}\n\n"
        f"Areas: {', '.join(spec.domain_names)}\n"
        f"What the user wants done (every item must appear in the request, with these exact "
        f"numbers, names, files and thresholds):\n{steps}\n\n"
        f"Write {_COMPLEXITY.get(spec.intent.complexity, 'a request')}, in the register of this "
        f"user's style and experience level, as one message to the assistant. It must be a "
        f"request for action, not a question, and must not ask the assistant for anything "
        f"before starting."
    )


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_LEAD = re.compile(r"^(request|user|message)\s*:\s*", re.IGNORECASE)


def _clean(text: str) -> str:
    text = _FENCE.sub("", text.strip()).strip()
    text = _LEAD.sub("", text)
    if len(text) > 1 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


class LLMRenderer:
    """Renders a spec through a chat model, with one retry after a rejected answer."""

    name = "llm"

    def __init__(self, client: ChatClient, *, attempts: int = 2) -> None:
        self.client = client
        self.attempts = attempts

    def render(self, spec: RenderSpec) -> RenderOutcome:
        messages: list[Message] = [
            {"role": "system", "content": _RENDER_SYSTEM},
            {"role": "user", "content": render_prompt(spec)},
        ]
        calls: list[ModelCall] = []
        blobs: list[bytes] = []
        problems: list[str] = []
        model = self.client.config.model
        for attempt in range(1, self.attempts + 1):
            try:
                result = self.client.complete(messages)
            except LLMError as e:
                calls.append(failed_model_call(e))
                if isinstance(e.call, RequestInfo):
                    blobs.append(e.call.body)
                problems.append(f"model call failed: {e}")
                break
            calls.append(result.model_call())
            blobs.append(result.request_body)
            text = _clean(result.content)
            problem = check_request(text, spec.tasks)
            if problem is None:
                return RenderOutcome(
                    text=text,
                    renderer=self.name,
                    model=result.response_model or model,
                    attempts=attempt,
                    problems=problems,
                    model_calls=calls,
                    blobs=blobs,
                )
            problems.append(problem)
            messages = [
                *messages,
                result.assistant_message(),
                {
                    "role": "user",
                    "content": (
                        f"That cannot be used: {problem}. Write the request again, following "
                        "every instruction above. Output only the request."
                    ),
                },
            ]
        return RenderOutcome(
            text=None,
            renderer=self.name,
            model=model,
            attempts=len(calls),
            problems=problems,
            model_calls=calls,
            blobs=blobs,
        )


# --------------------------------------------------------------------------------------------
# Persona generation
# --------------------------------------------------------------------------------------------

_PERSONA_SYSTEM = (
    "You create realistic, internally consistent personas of people who use an AI assistant "
    "on their computer for work. Answer with JSON only."
)
_REGIONS = [
    "West Africa", "East Africa", "Southern Africa", "North Africa", "the Middle East",
    "South Asia", "Southeast Asia", "East Asia", "Central Asia", "Oceania", "Northern Europe",
    "Southern Europe", "Eastern Europe", "Western Europe", "North America", "Central America",
    "the Caribbean", "South America",
]  # fmt: skip


def persona_prompt(batch: int, rng: random.Random, avoid_industries: list[str]) -> str:
    regions = ", ".join(rng.sample(_REGIONS, k=min(4, len(_REGIONS))))
    levels = ", ".join(EXPERIENCE_LEVELS)
    avoid = (
        f" Prefer industries other than these, which are already well covered: "
        f"{', '.join(avoid_industries)}."
        if avoid_industries
        else ""
    )
    return (
        f"Create {batch} different personas, people from {regions} (names that fit where they "
        f"live), across different industries, roles, seniority and communication styles.{avoid}"
        f'\nReturn a JSON object {{"personas": [...]}} where each persona has exactly these '
        f"fields: name (string), role (string), industry (string), expertise (list of 2-6 "
        f"strings), experience_level (one of: {levels}), communication_style (one or two words, "
        f"e.g. Formal, Collaborative, Direct, Analytical, Casual), work_context (one sentence: "
        f"where and how they work), common_goals (list of 1-4 strings), tools_preference (list "
        f"of 0-5 software tools they like). The role must fit the experience level (a Student "
        f"is not a director; a Chief Officer is an Executive)."
    )


def _persona_objects(content: str) -> list[Any]:
    text = _FENCE.sub("", content.strip()).strip()
    start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise ValueError("no JSON in the answer")
    try:
        data = msgspec.json.decode(text[start:].encode())
    except msgspec.DecodeError as e:
        raise ValueError(f"not valid JSON: {e}") from e
    if isinstance(data, dict):
        data = data.get("personas")
    if not isinstance(data, list):
        raise ValueError("no 'personas' list in the answer")
    return data


def generate_personas(
    client: ChatClient,
    count: int,
    *,
    seed: int = 0,
    batch: int = 10,
    max_calls: int | None = None,
    progress: Callable[[PoolBuild, int], None] | None = None,
) -> tuple[PoolBuild, list[str]]:
    """Ask the model for personas, `batch` per call, until `count` valid distinct ones.

    Returns:
        (the build: valid deduplicated personas, invalid-candidate messages, duplicate count;
         problems with whole answers, e.g. unparseable JSON or failed calls)
    """
    rng = random.Random(f"personas:{seed}")
    build = PoolBuild()
    answer_problems: list[str] = []
    max_calls = max_calls if max_calls is not None else 3 * (-(-count // batch)) + 2
    response_format = (
        {"type": "json_object"}
        if client.config.json_mode in ("json_object", "json_schema")
        else None
    )
    calls = 0
    while len(build.personas) < count and calls < max_calls:
        calls += 1
        industries: dict[str, int] = {}
        for p in build.personas:
            industries[p.industry] = industries.get(p.industry, 0) + 1
        crowded = sorted(industries, key=lambda k: -industries[k])[:8] if industries else []
        want = min(batch, count - len(build.personas))
        messages: list[Message] = [
            {"role": "system", "content": _PERSONA_SYSTEM},
            {"role": "user", "content": persona_prompt(want, rng, crowded)},
        ]
        try:
            result = client.complete(messages, response_format=response_format)
            build.add(_persona_objects(result.content))
        except LLMError as e:
            answer_problems.append(f"call {calls}: model call failed: {e}")
        except ValueError as e:
            answer_problems.append(f"call {calls}: {e}")
        if progress is not None:
            progress(build, calls)
    build.personas = build.personas[:count]
    return build, answer_problems
