"""Diversity metrics over a corpus of texts: Vendi Score, Distinct-N, Self-BLEU (numpy only).

Vendi Score (Friedman & Dieng) of order q is exp of the Renyi entropy of the eigenvalues of
K/n, K the cosine kernel of the items. With unit rows X (n x d), K/n = X X^T / n shares its
non-zero spectrum with the d x d matrix X^T X / n, so the score is computed from whichever is
smaller: the full pool of 44k items costs one 768 x 768 eigendecomposition.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "distinct_n",
    "kernel_spectrum",
    "self_bleu",
    "tokens",
    "unit_rows",
    "vendi_from_spectrum",
    "vendi_score",
]

FloatArray = npt.NDArray[np.floating]


def unit_rows(x: FloatArray) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero); no copy when they already are."""
    sq = np.einsum("ij,ij->i", x, x)
    if sq.size and np.all(np.abs(sq - 1.0) < 1e-4):
        return x
    norms = np.sqrt(sq)
    norms[norms == 0] = 1.0
    scaled: FloatArray = x / norms[:, None].astype(x.dtype)
    return scaled


def kernel_spectrum(x: FloatArray, *, method: str = "auto") -> npt.NDArray[np.float64]:
    """Eigenvalues of the cosine kernel divided by n (non-negative, summing to 1).

    Args:
        method: "primal" (n x n: X X^T / n), "dual" (d x d: X^T X / n) or "auto" (the smaller).
    """
    n, d = x.shape
    if n == 0:
        return np.zeros(0)
    u = unit_rows(x)
    if method == "auto":
        method = "dual" if n > d else "primal"
    if method == "dual":
        gram = u.T @ u
    elif method == "primal":
        gram = u @ u.T
    else:
        raise ValueError(f"method must be auto, primal or dual, not {method!r}")
    # The product is formed in the input's precision (the O(n d^2) part); the small
    # eigenproblem runs in float64.
    lam = np.linalg.eigvalsh(gram.astype(np.float64) / n)
    lam = np.clip(lam, 0.0, None)
    total = lam.sum()
    return lam / total if total > 0 else lam


def vendi_from_spectrum(lam: npt.NDArray[np.float64], q: float = 1.0) -> float:
    """exp(Renyi entropy of order q) of a probability spectrum; q=1 is Shannon, q=inf the
    inverse of the largest eigenvalue, q=0 the number of non-zero eigenvalues."""
    p = lam[lam > 1e-12]
    if p.size == 0:
        return 0.0
    if q == 1.0:
        return float(np.exp(-np.sum(p * np.log(p))))
    if math.isinf(q):
        return float(1.0 / p.max())
    if q == 0.0:
        return float(p.size)
    return float(np.exp(np.log(np.sum(p**q)) / (1.0 - q)))


def vendi_score(x: FloatArray, q: float = 1.0, *, method: str = "auto") -> float:
    """Vendi Score of order q of the rows of `x` under the cosine kernel."""
    return vendi_from_spectrum(kernel_spectrum(x, method=method), q)


def tokens(text: str) -> list[str]:
    """The Distinct-N / Self-BLEU tokenisation: lower-cased, split on whitespace."""
    return text.lower().split()


def _ngrams(toks: Sequence[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(toks[i:] for i in range(n)), strict=False)


def distinct_n(
    texts: Sequence[str],
    *,
    n_values: Sequence[int] = (1, 2, 3),
    k_tokens: int = 20,
    samples: int = 5000,
    seed: int = 0,
) -> dict[str, float | int | None]:
    """Distinct-N with the length-normalised protocol.

    Each text is cut to its first `k_tokens` tokens; texts shorter than that are left out, so
    every sample contributes exactly the same number of n-grams. `samples` texts are drawn
    (seeded, without replacement) from the eligible ones. Distinct-n = distinct n-grams / all
    n-grams, pooled over the sample.

    Returns:
        ``{"distinct_1": ..., "distinct_2": ..., "samples": used, "eligible": eligible}``;
        each Distinct-n is None when no text has `k_tokens` tokens (nothing was measured,
        which is not the same as zero diversity).
    """
    eligible = [t[:k_tokens] for t in (tokens(x) for x in texts) if len(t) >= k_tokens]
    chosen = eligible
    if len(eligible) > samples:
        chosen = random.Random(seed).sample(eligible, samples)
    out: dict[str, float | int | None] = {"samples": len(chosen), "eligible": len(eligible)}
    for n in n_values:
        grams = [g for toks in chosen for g in _ngrams(toks, n)]
        out[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else None
    return out


def self_bleu(
    texts: Sequence[str],
    *,
    max_n: int = 4,
    samples: int = 1000,
    seed: int = 0,
    epsilon: float = 0.1,
) -> float:
    """Mean BLEU-`max_n` of each sampled text against all the other sampled texts.

    Standard corpus conventions per hypothesis: n-gram counts clipped by their maximum count in
    any one reference, uniform weights, the brevity penalty against the reference length
    closest to the hypothesis (the shorter on a tie), and a zero n-gram match count replaced by
    `epsilon` (smoothing "method 1") so one missing order does not zero the score. Clipping
    against "every other text" uses the two largest counts of each n-gram, so the whole
    computation is linear in the number of n-grams rather than quadratic in texts.
    """
    pool = [tokens(t) for t in texts]
    pool = [t for t in pool if t]
    if len(pool) > samples:
        pool = random.Random(seed).sample(pool, samples)
    if len(pool) < 2:
        return 0.0
    counts = [[Counter(_ngrams(toks, n)) for n in range(1, max_n + 1)] for toks in pool]
    # For each order: n-gram -> (largest count, its owner, second largest count).
    tops: list[dict[tuple[str, ...], tuple[int, int, int]]] = []
    for n in range(max_n):
        top: dict[tuple[str, ...], tuple[int, int, int]] = {}
        for owner, doc in enumerate(counts):
            for gram, c in doc[n].items():
                best, who, second = top.get(gram, (0, -1, 0))
                if c > best:
                    top[gram] = (c, owner, best)
                elif c > second:
                    top[gram] = (best, who, c)
        tops.append(top)
    lengths = sorted(len(t) for t in pool)
    scores = []
    for i, toks in enumerate(pool):
        log_p = 0.0
        for n in range(max_n):
            total = max(len(toks) - n, 0)
            if total == 0:
                log_p += math.log(epsilon / 1.0)
                continue
            matched = 0
            for gram, c in counts[i][n].items():
                best, who, second = tops[n][gram]
                ref_max = second if who == i else best
                matched += min(c, ref_max)
            log_p += math.log((matched if matched else epsilon) / total)
        scores.append(math.exp(log_p / max_n) * _brevity(len(toks), lengths))
    return float(np.mean(scores))


def _brevity(hyp_len: int, sorted_lengths: list[int]) -> float:
    """Brevity penalty against the closest other length (the hypothesis's own length is in the
    list once; removing one copy of it gives the references' lengths)."""
    refs = list(sorted_lengths)
    del refs[bisect_left(refs, hyp_len)]
    j = bisect_left(refs, hyp_len)
    candidates = [refs[k] for k in (j - 1, j) if 0 <= k < len(refs)]
    closest = min(candidates, key=lambda r: (abs(r - hyp_len), r))
    if hyp_len >= closest:
        return 1.0
    return math.exp(1.0 - closest / hyp_len) if hyp_len else 0.0
