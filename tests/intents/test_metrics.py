"""Vendi Score, Distinct-N and Self-BLEU: known values, hand-computed examples, primal == dual."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from ise_es.diversity.metrics import (
    distinct_n,
    kernel_spectrum,
    self_bleu,
    tokens,
    vendi_from_spectrum,
    vendi_score,
)


def test_identical_items_score_one_and_orthogonal_items_score_n() -> None:
    same = np.tile(np.array([[0.6, 0.8, 0.0]]), (50, 1))
    assert vendi_score(same) == pytest.approx(1.0)
    ortho = np.eye(7)
    assert vendi_score(ortho) == pytest.approx(7.0)
    # scale does not matter (cosine kernel)
    assert vendi_score(ortho * np.arange(1, 8)[:, None]) == pytest.approx(7.0)


def test_two_clusters_give_two() -> None:
    x = np.vstack([np.tile([1.0, 0.0], (30, 1)), np.tile([0.0, 1.0], (30, 1))])
    assert vendi_score(x) == pytest.approx(2.0)


@pytest.mark.parametrize("q", [0.5, 1.0, 2.0, math.inf])
@pytest.mark.parametrize(("n", "d"), [(40, 8), (6, 30), (25, 25)])
def test_primal_and_dual_agree(q: float, n: int, d: int) -> None:
    rng = np.random.default_rng(n * d)
    x = rng.standard_normal((n, d)) + 0.5  # correlated, not orthogonal
    primal = vendi_score(x, q, method="primal")
    dual = vendi_score(x, q, method="dual")
    assert primal == pytest.approx(dual, rel=1e-9)
    assert 1.0 <= primal <= min(n, d)


def test_spectrum_is_a_distribution_and_float32_matches_float64() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 64))
    lam = kernel_spectrum(x)
    assert lam.sum() == pytest.approx(1.0) and (lam >= 0).all()
    assert vendi_score(x.astype(np.float32)) == pytest.approx(vendi_score(x), rel=1e-4)


def test_renyi_orders_on_a_known_spectrum() -> None:
    lam = np.array([0.5, 0.25, 0.25])
    assert vendi_from_spectrum(lam, 1.0) == pytest.approx(math.exp(1.5 * math.log(2)))
    assert vendi_from_spectrum(lam, 2.0) == pytest.approx(1 / 0.375)
    assert vendi_from_spectrum(lam, math.inf) == pytest.approx(2.0)
    assert vendi_from_spectrum(lam, 0.0) == 3.0
    # order is non-increasing in q
    values = [vendi_from_spectrum(lam, q) for q in (0.0, 0.5, 1.0, 2.0, math.inf)]
    assert values == sorted(values, reverse=True)


def test_distinct_n_hand_computed() -> None:
    texts = ["The cat sat on the mat", "the dog sat on the log", "too short"]
    out = distinct_n(texts, n_values=(1, 2, 3), k_tokens=6)
    # unigrams: 12 tokens; distinct: the cat sat on mat dog log = 7
    assert out["distinct_1"] == pytest.approx(7 / 12)
    # bigrams: 10; "sat on" and "on the" repeat -> 8 distinct
    assert out["distinct_2"] == pytest.approx(8 / 10)
    # trigrams: 8; "sat on the" repeats -> 7 distinct
    assert out["distinct_3"] == pytest.approx(7 / 8)
    assert out["samples"] == 2 and out["eligible"] == 2  # "too short" has < 6 tokens


def test_distinct_n_truncates_to_k_and_samples_reproducibly() -> None:
    texts = [f"w{i} common tail words here and more filler tokens" for i in range(100)]
    first_two = distinct_n(texts, n_values=(1,), k_tokens=2, samples=10, seed=3)
    assert first_two["samples"] == 10
    # first 2 tokens: w_i (distinct) + "common" (shared) -> 11 distinct of 20
    assert first_two["distinct_1"] == pytest.approx(11 / 20)
    assert distinct_n(texts, k_tokens=5, samples=10, seed=3) == distinct_n(
        texts, k_tokens=5, samples=10, seed=3
    )


def test_self_bleu_hand_computed() -> None:
    # each text against the other: unigram precision 3/4, bigram 2/3, equal lengths (BP 1)
    score = self_bleu(["a b c d", "a b c e"], max_n=2)
    assert score == pytest.approx(math.sqrt(3 / 4 * 2 / 3))


def test_self_bleu_identical_and_brevity() -> None:
    assert self_bleu(["x y z w", "x y z w", "x y z w"]) == pytest.approx(1.0)
    # a short hypothesis is penalised against the closest reference length
    short, long_ = "a b", "a b c d"
    got = self_bleu([short, long_], max_n=1)
    # short: precision 1, BP exp(1 - 4/2); long: precision 2/4, BP 1
    assert got == pytest.approx((math.exp(1 - 2) + 0.5) / 2)


def naive_self_bleu(texts: list[str], max_n: int = 4, eps: float = 0.1) -> float:
    """Reference implementation: clip against each reference explicitly (quadratic)."""
    toks = [tokens(t) for t in texts]
    scores = []
    for i, hyp in enumerate(toks):
        refs = [r for j, r in enumerate(toks) if j != i]
        log_p = 0.0
        for n in range(1, max_n + 1):
            grams = Counter(tuple(hyp[k : k + n]) for k in range(len(hyp) - n + 1))
            total = sum(grams.values())
            ref_max: Counter[tuple[str, ...]] = Counter()
            for r in refs:
                rc = Counter(tuple(r[k : k + n]) for k in range(len(r) - n + 1))
                for g, c in rc.items():
                    ref_max[g] = max(ref_max[g], c)
            matched = sum(min(c, ref_max[g]) for g, c in grams.items())
            log_p += math.log((matched or eps) / total) if total else math.log(eps)
        closest = min((len(r) for r in refs), key=lambda r: (abs(r - len(hyp)), r))
        bp = 1.0 if len(hyp) >= closest else math.exp(1 - closest / len(hyp))
        scores.append(math.exp(log_p / max_n) * bp)
    return sum(scores) / len(scores)


def test_self_bleu_matches_the_quadratic_definition() -> None:
    rng = np.random.default_rng(5)
    vocab = [f"w{i}" for i in range(12)]
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(3, 15)))) for _ in range(30)]
    assert self_bleu(texts) == pytest.approx(naive_self_bleu(texts), rel=1e-12)
