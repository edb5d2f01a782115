"""Generating, importing and exporting intents through a real store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ise_es.errors import InvalidInput
from ise_es.events import IntentRejected, IntentRendered, IntentSampled
from ise_es.intents.dedup import Deduplicator, MinHashIndex
from ise_es.intents.generate import generate_intents
from ise_es.intents.jsonl import export_intents, import_intents
from ise_es.intents.library import load_library
from ise_es.intents.personas import PersonaPool, freeze_pool, latest_pool, load_pool
from ise_es.intents.records import intent_stream, load_intents
from ise_es.intents.render import RenderOutcome, RenderSpec, TemplateRenderer
from ise_es.store.sql import SqlEventStore, open_store


def run(store: SqlEventStore, pool: PersonaPool, count: int, **kw: Any):  # type: ignore[no-untyped-def]
    return generate_intents(
        store,
        library=load_library(),
        pool=pool,
        renderer=kw.pop("renderer", TemplateRenderer()),
        dedup=Deduplicator(MinHashIndex()),
        count=count,
        seed=kw.pop("seed", 1),
        **kw,
    )


def test_freeze_and_load_pool(store: SqlEventStore, small_pool: PersonaPool) -> None:
    assert freeze_pool(store, small_pool) is True
    assert freeze_pool(store, small_pool) is False  # same digest: already frozen
    assert load_pool(store, small_pool.pool_id) == small_pool
    assert latest_pool(store).digest == small_pool.digest
    with pytest.raises(InvalidInput, match="no persona pool 'nope'"):
        load_pool(store, "nope")


def test_generate_records_whole_intents_and_resumes(
    store: SqlEventStore, small_pool: PersonaPool
) -> None:
    freeze_pool(store, small_pool)
    first = run(store, small_pool, 12, workers=2, batch=5)
    assert first.accepted == 12 and first.resumed == 0
    recs = load_intents(store)
    assert len([r for r in recs if r.status == "accepted"]) == 12
    one = store.read_stream(intent_stream(recs[0].intent_id))
    assert [type(e.data) for e in one] == [IntentSampled, IntentRendered]
    sampled = one[0].data
    assert isinstance(sampled, IntentSampled)
    assert sampled.pool_id == small_pool.pool_id and sampled.index == 0 and sampled.seed == 1

    # a rerun with a larger count keeps the first 12 and adds 8 more
    second = run(store, small_pool, 20, workers=1)
    assert second.resumed == 12 and second.accepted == 20
    assert len(load_intents(store)) == 20 + second.invalid + second.duplicates
    # the same count again records nothing new
    positions = len(list(store.iter_all()))
    assert run(store, small_pool, 20).resumed == 20
    assert len(list(store.iter_all())) == positions


def test_workers_do_not_change_the_outcome(
    tmp_path: Path, sqlite_url: str, small_pool: PersonaPool
) -> None:
    other_url = f"sqlite:///{tmp_path / 'copy.db'}"
    Path(tmp_path / "copy.db").write_bytes(Path(sqlite_url.removeprefix("sqlite:///")).read_bytes())
    texts = []
    for url, workers in ((sqlite_url, 1), (other_url, 3)):
        s = open_store(url)
        try:
            run(s, small_pool, 15, workers=workers, seed=9)
            texts.append([(r.intent_id, r.text) for r in load_intents(s)])
        finally:
            s.close()
    assert texts[0] == texts[1]


class EchoRenderer:
    """Renders every intent to the same few texts, so dedup and invalid paths are exercised."""

    name = "echo"

    def render(self, spec: RenderSpec) -> RenderOutcome:
        if spec.intent.index % 5 == 4:
            return RenderOutcome(text=None, renderer=self.name, problems=["empty text"])
        text = TemplateRenderer().render(spec).text or ""
        if spec.intent.index % 5 in (1, 2):  # a copy of the previous intent's text
            return RenderOutcome(text="PLACEHOLDER", renderer=self.name)
        return RenderOutcome(text=text, renderer=self.name)


def test_duplicates_and_invalid_renders_are_rejected_with_reasons(
    sqlite_store: SqlEventStore, small_pool: PersonaPool
) -> None:
    report = run(sqlite_store, small_pool, 4, renderer=EchoRenderer())
    recs = {r.intent_id: r for r in load_intents(sqlite_store)}
    rejected = [r.rejected for r in recs.values() if r.rejected is not None]
    invalid = [r for r in rejected if r.reason == "invalid"]
    dups = [r for r in rejected if r.reason == "duplicate"]
    assert report.invalid == len(invalid) >= 1
    assert report.duplicates == len(dups) >= 1
    for d in dups:
        assert isinstance(d, IntentRejected)
        assert d.duplicate_of in recs and recs[d.duplicate_of].status == "accepted"
        assert d.similarity == 1.0 and d.detail == "exact"
    assert all(r.detail == "empty text" for r in invalid)
    # an invalid render has no IntentRendered: only the sample and the rejection
    assert all(recs[r.intent_id].rendered is None for r in invalid)


def test_export_import_round_trip(
    store: SqlEventStore, small_pool: PersonaPool, tmp_path: Path, other_sqlite_url: str
) -> None:
    freeze_pool(store, small_pool)
    run(store, small_pool, 6)
    first = tmp_path / "a.jsonl"
    report = export_intents(store, first, load_library())
    assert report.written == 6
    lines = [json.loads(x) for x in first.read_text().splitlines()]
    rec = lines[0]
    assert set(rec) == {
        "id",
        "natural_language_intent",
        "domains",
        "tasks",
        "persona_id",
        "tools_used",
        "skills_used",
        "complexity",
        "metadata",
    }
    assert rec["id"].startswith("intent_") and rec["complexity"] in ("simple", "medium", "complex")
    persona = rec["metadata"]["persona"]
    assert (
        persona["experience_level"]
        and persona["industry"]
        and isinstance(persona["expertise"], list)
    )
    assert [d["name"] for d in rec["metadata"]["domains"]] == rec["domains"]
    assert sorted(
        t["name"] for d in rec["metadata"]["domains"] for t in d["selected_tasks"]
    ) == sorted(rec["tasks"])

    other = open_store(other_sqlite_url)
    try:
        imported = import_intents(other, first)
        assert imported.recorded == 6
        assert import_intents(other, first).already_present == 6  # idempotent
        second = tmp_path / "b.jsonl"
        export_intents(other, second, load_library())
        assert second.read_bytes() == first.read_bytes()
    finally:
        other.close()


REFERENCE: list[dict[str, Any]] = [
    {
        "id": "intent_58f206b3",
        "natural_language_intent": "Scrape the price table at https://shop.example.com into "
        "prices.csv and alert me when anything drops below 40 dollars.",
        "domains": ["web-extraction", "automation-flow"],
        "tasks": ["scrape-table", "price-monitor"],
        "persona_id": "persona_1",
        "tools_used": ["web_fetch", "cron"],
        "skills_used": [],
        "complexity": "medium",
        "metadata": {
            "persona": {
                "name": "Ana Costa",
                "role": "Store Owner",
                "industry": "Retail",
                "expertise": ["pricing"],
                "experience_level": "Senior",
                "communication_style": "Direct",
                "work_context": "Porto",
            },
            "domains": [
                {
                    "name": "web-extraction",
                    "description": "d",
                    "selected_tasks": [{"name": "scrape-table", "description": "x"}],
                }
            ],
        },
    },
    {
        "task_id": "task-0007",
        "task_type": "multi_step",
        "natural_language_intent": "Back up my notes folder nightly.",
    },
    {"intent_id": 42, "natural_language_intent": "List the ten biggest files in Downloads."},
    {"question": "What is the capital of France?", "answer": "Paris"},
]


def write_lines(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_import_reference_shapes_and_export_them_back(
    sqlite_store: SqlEventStore, tmp_path: Path
) -> None:
    src = write_lines(tmp_path / "ref.jsonl", REFERENCE)
    report = import_intents(sqlite_store, src)
    assert report.recorded == 4 and not report.invalid
    recs = {r.intent_id: r for r in load_intents(sqlite_store)}
    assert set(recs) >= {"intent_58f206b3", "task-0007", "42"}
    q = next(r for r in recs.values() if r.intent_id.startswith("q_"))
    assert q.text == "What is the capital of France?"
    assert recs["task-0007"].stream_id != "intent-task-0007"  # '-' ids get a digest stream
    out = tmp_path / "out.jsonl"
    export_intents(sqlite_store, out, load_library())
    back = [json.loads(x) for x in out.read_text().splitlines()]
    assert back[0] == REFERENCE[0]
    assert back[1] == {"id": "task-0007", **REFERENCE[1]}
    assert back[2]["id"] == "42" and back[2]["intent_id"] == 42
    assert back[3]["question"] == REFERENCE[3]["question"] and back[3]["answer"] == "Paris"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "a JSON object is required"),
        (json.dumps({"id": "x"}), "field 'natural_language_intent'"),
        (json.dumps({"natural_language_intent": "do it"}), "no id"),
        (
            json.dumps({"id": "y", "natural_language_intent": "t", "complexity": "hard"}),
            "'hard' is not one of",
        ),
        (
            json.dumps({"id": "y", "natural_language_intent": "t", "tasks": "scrape"}),
            "field 'tasks'",
        ),
        (json.dumps({"id": "intent_58f206b3", "natural_language_intent": "again"}), "duplicate id"),
    ],
)
def test_a_broken_line_names_file_and_line_and_records_nothing(
    sqlite_store: SqlEventStore, tmp_path: Path, bad: str, message: str
) -> None:
    src = write_lines(tmp_path / "bad.jsonl", [REFERENCE[0], "", bad, REFERENCE[1]])
    with pytest.raises(InvalidInput) as info:
        import_intents(sqlite_store, src)
    assert str(info.value).startswith(f"{src}:3: ")
    assert message in str(info.value)
    assert load_intents(sqlite_store) == []
    # --skip-invalid: the other lines go in, the broken one is reported
    report = import_intents(sqlite_store, src, skip_invalid=True)
    assert report.recorded == 2 and len(report.invalid) == 1
    assert report.invalid[0].startswith(f"{src}:3: ")
