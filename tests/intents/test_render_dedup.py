"""Template rendering, request validation, and exact/near duplicate detection."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from ise_es.intents.dedup import (
    Deduplicator,
    EmbeddingIndex,
    MinHasher,
    MinHashIndex,
    normalize_text,
    text_key,
)
from ise_es.intents.library import load_library
from ise_es.intents.personas import build_pool, make_pool, offline_personas
from ise_es.intents.render import (
    TEMPLATE_LABEL,
    TemplateRenderer,
    check_request,
    fill_placeholders,
    make_spec,
    neutral_description,
)
from ise_es.intents.sampler import Sampler


def test_every_sampled_intent_renders_valid_template_text() -> None:
    lib = load_library()
    pool = make_pool(build_pool(offline_personas(40, seed=1)).personas)
    sampler = Sampler(lib, pool, seed=5)
    renderer = TemplateRenderer()
    texts = set()
    for i in range(300):
        intent = sampler.sample(i)
        rng = sampler.rng_for(i)
        sampler_again = Sampler(lib, pool, seed=5)
        spec = make_spec(lib, pool.by_id()[intent.persona_id], intent, rng)
        out = renderer.render(spec)
        assert out.text is not None, out.problems
        assert out.text.startswith(TEMPLATE_LABEL)
        assert "{" not in out.text  # every placeholder filled
        texts.add(out.text)
        if i < 3:  # the same index gives the same concrete parameters
            again = make_spec(lib, spec.persona, sampler_again.sample(i), sampler_again.rng_for(i))
            assert again.asks == spec.asks
    assert len(texts) == 300


def test_fill_and_neutral_placeholders() -> None:
    text = "top {n:3-3} rows of {file:csv} over {pct:10-10}"
    assert fill_placeholders(text, random.Random(0)).startswith("top 3 rows of ")
    assert fill_placeholders(text, random.Random(0)).endswith(".csv over 10%")
    assert (
        neutral_description(text)
        == "top a given number rows of a .csv file over a given percentage"
    )


TASKS = [load_library().task("scrape-table"), load_library().task("schedule-job")]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty text"),
        ("   ", "empty text"),
        ("Scrape the table please", "too short"),
        (
            "Could you clarify which table you want me to scrape and when the cron job "
            "should run every day?",
            "a question back",
        ),
        (
            "What exactly should be scraped from the pricing page, and how often should the "
            "schedule repeat each week?",
            "a question back",
        ),
        (
            "Please scrape the pricing table at https://shop.example.com/pricing into prices.csv "
            "and save it for me by tonight, thanks a lot.",
            "does not mention task(s): schedule-job",
        ),
    ],
)
def test_check_request_rejects(text: str, problem: str) -> None:
    result = check_request(text, TASKS)
    assert result is not None and result.startswith(problem)


def test_check_request_accepts_a_request_with_morphology_and_a_side_question() -> None:
    text = (
        "I need the pricing table scraped from https://shop.example.com/pricing into "
        "prices.csv, then a job scheduled to redo it every day at 07:30. Is that doable?"
    )
    assert check_request(text, TASKS) is None


def test_normalisation_and_exact_keys() -> None:
    assert normalize_text("  Hello,   WORLD!! ") == "hello world"
    assert text_key("Hello, world") == text_key("hello   WORLD.")
    assert text_key("hello world") != text_key("hello there world")


BASE = (
    "Please scrape the pricing table at the vendor site into prices csv, compare it with last "
    "month's export, flag every product whose price moved by more than twelve percent, and "
    "schedule the whole check to run every Monday at seven thirty in the morning."
)


def test_minhash_estimates_jaccard() -> None:
    hasher = MinHasher(num_perm=256)
    a, b = hasher.shingles(BASE), hasher.shingles(BASE.replace("twelve", "fifteen"))
    true_j = len(a & b) / len(a | b)
    est = MinHasher.jaccard(
        hasher.signature(BASE), hasher.signature(BASE.replace("twelve", "fifteen"))
    )
    assert abs(est - true_j) < 0.1
    assert MinHasher.jaccard(hasher.signature(BASE), hasher.signature(BASE)) == 1.0


def test_deduplicator_exact_and_minhash_near() -> None:
    dedup = Deduplicator(MinHashIndex(threshold=0.7))
    near = BASE.replace("Monday", "Tuesday")
    unrelated = (
        "Resize every photo in the trip folder to twelve hundred pixels wide, strip the "
        "location metadata, and build a slideshow of the best forty shots for the family."
    )
    verdicts = dedup.check_batch(["a", "b", "c", "d"], [BASE, BASE.upper() + "!!", near, unrelated])
    assert verdicts[0] is None
    assert verdicts[1] is not None and verdicts[1].kind == "exact"
    assert verdicts[1].duplicate_of == "a" and verdicts[1].similarity == 1.0
    assert verdicts[2] is not None and verdicts[2].kind == "minhash"
    assert verdicts[2].duplicate_of == "a" and 0.7 <= verdicts[2].similarity < 1.0
    assert verdicts[3] is None
    # a later batch is checked against everything accepted so far
    later = dedup.check_batch(["e"], [unrelated.replace("forty", "fifty")])
    assert later[0] is not None and later[0].duplicate_of == "d"


def test_deduplicator_without_near_index_only_catches_exact() -> None:
    dedup = Deduplicator()
    verdicts = dedup.check_batch(["a", "b"], [BASE, BASE.replace("Monday", "Tuesday")])
    assert verdicts == [None, None]


def bag_of_words(texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """A real (if crude) embedding: hashed word counts, enough to exercise the cosine path."""
    out = np.zeros((len(texts), 512), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in normalize_text(t).split():
            out[i, int(text_key(w)[:6], 16) % 512] += 1.0
    return out


def test_embedding_index_near_duplicates() -> None:
    index = EmbeddingIndex(bag_of_words, threshold=0.9)
    dedup = Deduplicator(index)
    reordered = " ".join(reversed(BASE.split()))  # same words: cosine 1, not an exact dup
    verdicts = dedup.check_batch(["a", "b"], [BASE, reordered])
    assert verdicts[0] is None
    assert verdicts[1] is not None and verdicts[1].kind == "embedding"
    assert verdicts[1].similarity == pytest.approx(1.0, abs=1e-5)
    # resuming: accepted intents from the store are loaded, then checked against
    fresh = Deduplicator(EmbeddingIndex(bag_of_words, threshold=0.9))
    fresh.accept_existing(["a"], [BASE])
    assert fresh.check_batch(["z"], [reordered])[0].duplicate_of == "a"  # type: ignore[union-attr]
    assert len(index) == 1
