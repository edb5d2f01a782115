"""Duplicate detection for rendered intents: exact (normalised text) and near duplicates.

Near duplicates are found by embedding cosine when an embedding model is available, otherwise
by MinHash over word 3-shingles with LSH banding (numpy only, no extra dependency). Either way
the index answers "which accepted intent is this one closest to, and how close": the caller
records the rejection with that id and similarity.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "Deduplicator",
    "DupVerdict",
    "EmbeddingIndex",
    "MinHashIndex",
    "MinHasher",
    "NearIndex",
    "normalize_text",
    "text_key",
]

_PUNCT = re.compile(r"[^\w\s]+")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def text_key(text: str) -> str:
    """The exact-duplicate key: sha256 of the normalised text."""
    return hashlib.sha256(normalize_text(text).encode()).hexdigest()


_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser: a bijection on 64-bit words with full avalanche (uint64 array
    arithmetic wraps modulo 2^64, which is what the finaliser relies on)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


class MinHasher:
    """MinHash signatures of word shingles.

    Shingles hash to 64 bits (blake2b); permutation i is ``mix(h XOR mask_i)`` with a random
    64-bit mask per permutation and a bijective avalanche mixer, so the permutations are
    unrelated to each other and to the order of the raw hashes. (An affine ``a*h + b`` without
    wrap-around would keep that order and make every permutation pick the same shingle.)
    """

    def __init__(self, num_perm: int = 128, shingle: int = 3, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.shingle = shingle
        self._masks = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64)

    def shingles(self, text: str) -> set[bytes]:
        words = normalize_text(text).split()
        k = self.shingle
        if len(words) < k:
            return {" ".join(words).encode()}
        return {" ".join(words[i : i + k]).encode() for i in range(len(words) - k + 1)}

    def signature(self, text: str) -> npt.NDArray[np.uint64]:
        hashes = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(s, digest_size=8).digest(), "little")
                for s in self.shingles(text)
            ),
            dtype=np.uint64,
        )
        # (num_perm, shingles) matrix of permuted hashes; min over shingles.
        permuted = _mix(hashes[None, :] ^ self._masks[:, None])
        return permuted.min(axis=1)  # type: ignore[no-any-return]

    @staticmethod
    def jaccard(sig_a: npt.NDArray[np.uint64], sig_b: npt.NDArray[np.uint64]) -> float:
        """Estimated Jaccard similarity: the share of equal signature positions."""
        return float(np.mean(sig_a == sig_b))


class NearIndex(Protocol):
    """Accepted texts, searchable for the most similar one."""

    method: str
    threshold: float

    def nearest(self, texts: Sequence[str]) -> list[tuple[str | None, float]]:
        """For each text: (id of the most similar indexed text, similarity), or (None, 0.0).

        Only indexed texts count, not the other texts of the same call."""
        ...

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None: ...

    def similarity(self, text_a: str, text_b: str) -> float: ...


class MinHashIndex:
    """MinHash + LSH (bands x rows = num_perm); candidates verified on the full signature."""

    method = "minhash"

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, bands: int = 32) -> None:
        if num_perm % bands:
            raise ValueError("num_perm must be a multiple of bands")
        self.threshold = threshold
        self.hasher = MinHasher(num_perm=num_perm)
        self._bands = bands
        self._rows = num_perm // bands
        self._buckets: list[dict[bytes, list[int]]] = [defaultdict(list) for _ in range(bands)]
        self._ids: list[str] = []
        self._sigs: list[npt.NDArray[np.uint64]] = []

    def __len__(self) -> int:
        return len(self._ids)

    def _band_keys(self, sig: npt.NDArray[np.uint64]) -> list[bytes]:
        r = self._rows
        return [sig[i * r : (i + 1) * r].tobytes() for i in range(self._bands)]

    def _nearest_one(self, sig: npt.NDArray[np.uint64]) -> tuple[str | None, float]:
        candidates: set[int] = set()
        for band, key in enumerate(self._band_keys(sig)):
            candidates.update(self._buckets[band].get(key, ()))
        best: tuple[str | None, float] = (None, 0.0)
        for c in sorted(candidates):
            sim = MinHasher.jaccard(sig, self._sigs[c])
            if sim > best[1]:
                best = (self._ids[c], sim)
        return best

    def nearest(self, texts: Sequence[str]) -> list[tuple[str | None, float]]:
        return [self._nearest_one(self.hasher.signature(t)) for t in texts]

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        for intent_id, text in zip(ids, texts, strict=True):
            sig = self.hasher.signature(text)
            row = len(self._ids)
            self._ids.append(intent_id)
            self._sigs.append(sig)
            for band, key in enumerate(self._band_keys(sig)):
                self._buckets[band][key].append(row)

    def similarity(self, text_a: str, text_b: str) -> float:
        return MinHasher.jaccard(self.hasher.signature(text_a), self.hasher.signature(text_b))


EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]
"""Texts -> (n, d) float32 rows; need not be normalised."""


def _unit(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    unit: npt.NDArray[np.float32] = (rows / norms).astype(np.float32, copy=False)
    return unit


class EmbeddingIndex:
    """Cosine similarity of sentence embeddings against every accepted text."""

    method = "embedding"

    def __init__(self, embed: EmbedFn, threshold: float = 0.92) -> None:
        self.threshold = threshold
        self._embed = embed
        self._ids: list[str] = []
        self._matrix: npt.NDArray[np.float32] | None = None
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def nearest(self, texts: Sequence[str]) -> list[tuple[str | None, float]]:
        if not texts:
            return []
        if self._n == 0 or self._matrix is None:
            return [(None, 0.0)] * len(texts)
        queries = _unit(self._embed(texts))
        sims = queries @ self._matrix[: self._n].T
        best = sims.argmax(axis=1)
        return [(self._ids[int(j)], float(sims[i, j])) for i, j in enumerate(best)]

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        if not ids:
            return
        rows = _unit(self._embed(texts))
        need = self._n + len(rows)
        if self._matrix is None or need > len(self._matrix):
            grown = np.zeros((max(need, 2 * (self._n or 64)), rows.shape[1]), dtype=np.float32)
            if self._matrix is not None:
                grown[: self._n] = self._matrix[: self._n]
            self._matrix = grown
        self._matrix[self._n : need] = rows
        self._ids.extend(ids)
        self._n = need

    def similarity(self, text_a: str, text_b: str) -> float:
        a, b = _unit(self._embed([text_a, text_b]))
        return float(a @ b)


class DupVerdict(tuple[str, float, str]):
    """(duplicate_of, similarity, kind) with kind 'exact' or the near method."""

    __slots__ = ()

    @property
    def duplicate_of(self) -> str:
        return self[0]

    @property
    def similarity(self) -> float:
        return self[1]

    @property
    def kind(self) -> str:
        return self[2]


class Deduplicator:
    """Exact-then-near duplicate checks against accepted texts, in submission order."""

    def __init__(self, near: NearIndex | None = None) -> None:
        self.near = near
        self._exact: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._exact)

    def accept_existing(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        """Load already-accepted intents (for a resumed run) without checking them."""
        for intent_id, text in zip(ids, texts, strict=True):
            self._exact.setdefault(text_key(text), intent_id)
        if self.near is not None:
            self.near.add(ids, texts)

    def check_batch(self, ids: Sequence[str], texts: Sequence[str]) -> list[DupVerdict | None]:
        """Decide each text in order (a text may duplicate an earlier one of the same batch);
        accepted texts are added to the index."""
        verdicts: list[DupVerdict | None] = []
        prior = self.near.nearest(texts) if self.near is not None else []
        accepted: list[tuple[str, str]] = []
        for i, (intent_id, text) in enumerate(zip(ids, texts, strict=True)):
            key = text_key(text)
            if key in self._exact:
                verdicts.append(DupVerdict((self._exact[key], 1.0, "exact")))
                continue
            if self.near is not None:
                best_id, best = prior[i]
                for other_id, other_text in accepted:
                    sim = self.near.similarity(text, other_text)
                    if sim > best:
                        best_id, best = other_id, sim
                if best_id is not None and best >= self.near.threshold:
                    verdicts.append(DupVerdict((best_id, best, self.near.method)))
                    continue
            self._exact[key] = intent_id
            accepted.append((intent_id, text))
            verdicts.append(None)
        if self.near is not None and accepted:
            self.near.add([a for a, _ in accepted], [t for _, t in accepted])
        return verdicts
