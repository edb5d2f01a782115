"""The LLM renderer and persona generator against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import os

from ise_es.events import IntentRendered, ModelCall
from ise_es.intents.dedup import Deduplicator
from ise_es.intents.generate import generate_intents
from ise_es.intents.library import load_library
from ise_es.intents.llm_render import LLMRenderer, generate_personas
from ise_es.intents.personas import PersonaPool
from ise_es.intents.records import intent_stream
from ise_es.intents.render import make_spec
from ise_es.intents.sampler import Sampler
from ise_es.llm import OpenAIChatClient, RoleConfig
from ise_es.store.sql import SqlEventStore
from tests.support.openai_server import Error, RecordedRequest, Reply, ScriptedOpenAIServer


def client(server: ScriptedOpenAIServer, model: str, role: str = "render") -> OpenAIChatClient:
    config = RoleConfig(role=role, model=model, base_url=server.base_url, max_retries=0)  # type: ignore[arg-type]
    return OpenAIChatClient(config, environ=os.environ)


def good_text(request: RecordedRequest) -> str:
    """A request mentioning every task: the task lines of the prompt, rephrased as asks."""
    prompt = request.messages[1]["content"]
    asks = [
        line[2:]
        for line in prompt.splitlines()
        if line.startswith("- ") and "(" in line and "):" in line
    ]
    return "Hi, I'm swamped this week. " + " Then ".join(asks) + ". Thanks, that is all."


def test_first_invalid_answer_is_retried_with_the_reason(
    openai_server: ScriptedOpenAIServer, small_pool: PersonaPool
) -> None:
    lib = load_library()
    sampler = Sampler(lib, small_pool, seed=2)
    intent = sampler.sample(0)
    spec = make_spec(lib, small_pool.by_id()[intent.persona_id], intent, sampler.rng_for(0))
    answers = iter(
        ["Could you clarify which files you mean and what output format you expect from me?", None]
    )

    def handler(req: RecordedRequest) -> Reply:
        text = next(answers)
        return Reply(content=text if text is not None else good_text(req))

    openai_server.handle("renderer", handler)
    with client(openai_server, "renderer") as c:
        out = LLMRenderer(c).render(spec)
    assert out.text is not None and out.attempts == 2
    assert out.problems == ["a question back to the user, not a request"]
    second = openai_server.requests_for("renderer")[1]
    assert second.messages[2]["role"] == "assistant"
    assert "a question back to the user" in second.messages[3]["content"]
    for ask in spec.asks:  # the concrete parameters reached the model
        assert ask in second.messages[1]["content"]
    assert len(out.model_calls) == 2 and len(out.blobs) == 2
    assert all(isinstance(m, ModelCall) and m.role == "render" for m in out.model_calls)


def test_two_invalid_answers_give_an_invalid_intent(
    openai_server: ScriptedOpenAIServer, small_pool: PersonaPool
) -> None:
    lib = load_library()
    sampler = Sampler(lib, small_pool, seed=2)
    intent = sampler.sample(1)
    spec = make_spec(lib, small_pool.by_id()[intent.persona_id], intent, sampler.rng_for(1))
    openai_server.script("renderer", Reply(content=""), Reply(content="ok."))
    with client(openai_server, "renderer") as c:
        out = LLMRenderer(c).render(spec)
    assert out.text is None and out.attempts == 2
    assert out.problems[0] == "empty text" and out.problems[1].startswith("too short")


def test_failed_call_is_recorded_not_raised(
    openai_server: ScriptedOpenAIServer, small_pool: PersonaPool
) -> None:
    lib = load_library()
    sampler = Sampler(lib, small_pool, seed=2)
    intent = sampler.sample(2)
    spec = make_spec(lib, small_pool.by_id()[intent.persona_id], intent, sampler.rng_for(2))
    openai_server.script("renderer", Error(500, "boom"))
    with client(openai_server, "renderer") as c:
        out = LLMRenderer(c).render(spec)
    assert out.text is None and out.problems[0].startswith("model call failed")
    assert out.model_calls[0].error is not None


def test_generate_with_the_llm_records_model_calls_on_the_intent_stream(
    openai_server: ScriptedOpenAIServer, small_pool: PersonaPool, sqlite_store: SqlEventStore
) -> None:
    openai_server.handle("renderer", lambda req: Reply(content=good_text(req)))
    with client(openai_server, "renderer") as c:
        report = generate_intents(
            sqlite_store,
            library=load_library(),
            pool=small_pool,
            renderer=LLMRenderer(c),
            dedup=Deduplicator(),
            count=3,
            seed=4,
            workers=2,
        )
    assert report.accepted == 3
    from ise_es.intents.sampler import intent_id_for

    events = sqlite_store.read_stream(intent_stream(intent_id_for(4, small_pool.digest, 0)))
    kinds = [type(e.data) for e in events]
    assert kinds[0] is ModelCall and IntentRendered in kinds
    call = events[0].data
    assert isinstance(call, ModelCall) and call.request_digest is not None
    body = json.loads(sqlite_store.get_blob(call.request_digest))
    assert body["model"] == "renderer"


def personas_reply(names: list[str]) -> Reply:
    """Personas by name; a name starting with "Bad" gets an experience level that is not one."""
    people = [
        {
            "name": n,
            "role": "Data Engineer",
            "industry": "Logistics",
            "expertise": ["SQL", "Airflow"],
            "experience_level": "Grandmaster" if n.startswith("Bad") else "Senior",
            "communication_style": "Direct",
            "work_context": "Works in Nairobi.",
            "common_goals": ["faster reports"],
            "tools_preference": ["dbt"],
        }
        for n in names
    ]
    return Reply(content="```json\n" + json.dumps({"personas": people}) + "\n```")


def test_persona_generator_validates_dedups_and_stops_at_count(
    openai_server: ScriptedOpenAIServer,
) -> None:
    openai_server.script(
        "persona-model",
        Reply(content="Sorry, here you go: not json"),
        personas_reply(["Wanjiru Kamau", "Amina Yusuf", "Wanjiru Kamau"]),
        personas_reply(["Otieno Odhiambo", "Bad Level"]),
        personas_reply(["Zawadi Mwangi", "Juma Baraka"]),
    )
    with client(openai_server, "persona-model", role="persona") as c:
        build, problems = generate_personas(c, 4, batch=3, seed=1)
    assert [p.name for p in build.personas] == [
        "Wanjiru Kamau",
        "Amina Yusuf",
        "Otieno Odhiambo",
        "Zawadi Mwangi",
    ]
    assert build.duplicates == 1 and len(build.invalid) == 1
    assert "Grandmaster" in build.invalid[0]
    assert problems == ["call 1: no JSON in the answer"]
    assert openai_server.remaining("persona-model") == 0
    first_prompt = openai_server.requests_for("persona-model")[0].messages[1]["content"]
    assert "Create 3 different personas" in first_prompt
    last_prompt = openai_server.requests_for("persona-model")[-1].messages[1]["content"]
    assert "Create 1 different personas" in last_prompt and "Logistics" in last_prompt
