"""Diversity benchmark: Vendi against bare numpy, the full report over cached embeddings, and
embedding throughput.

1. Vendi Score over 43,956 x 768 random unit vectors (float32): `ise_es` against the bare
   numpy computation of the same number (X^T X / n, eigvalsh, Shannon entropy), both measured
   here, median of several runs; peak memory of each call (tracemalloc, which sees numpy's
   buffers). Target: ratio <= 1.5, peak <= 2 GiB.
2. The full diversity report (Vendi, bootstrap N=500 x 30, scaling curve, Distinct-N at K=20/50,
   Self-BLEU, slices) over 43,956 template-rendered intents whose embeddings are all in the
   cache (random unit vectors written through the real cache): the rerun path, which must embed
   nothing. Target: <= 60 s.
3. Embedding throughput (texts/s) of the small model (all-minilm-l6-v2) and, when installed, the
   default (all-mpnet-base-v2), on short texts and on ~150-word intents.

    python benchmarks/diversity_bench.py [--items 43956] [--skip-models]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ise_es.diversity.metrics import vendi_score
from ise_es.diversity.report import DiversityItem, diversity_report
from ise_es.intents.embeddings import (
    DEFAULT_MODEL,
    SMALL_MODEL,
    Embedder,
    EmbeddingUnavailable,
    default_cache_dir,
)
from ise_es.intents.library import load_library
from ise_es.intents.personas import build_pool, make_pool, offline_personas
from ise_es.intents.render import TemplateRenderer, make_spec
from ise_es.intents.sampler import Sampler

GIB = 1 << 30


def bare_numpy_vendi(x: npt.NDArray[np.float32]) -> float:
    lam = np.linalg.eigvalsh(x.T @ x / x.shape[0])
    lam = lam[lam > 1e-12]
    lam = lam / lam.sum()
    return float(np.exp(-np.sum(lam * np.log(lam))))


def measure(fn: Callable[[], float], runs: int) -> tuple[float, float, int]:
    """(median seconds over untraced runs, value, peak traced bytes of one more traced run)."""
    times = []
    value = 0.0
    for _ in range(runs):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), value, peak


def bench_vendi(n: int, d: int, runs: int) -> bool:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    bare_numpy_vendi(x)  # warm up BLAS threads
    base_t, base_v, base_peak = measure(lambda: bare_numpy_vendi(x), runs)
    ours_t, ours_v, ours_peak = measure(lambda: vendi_score(x), runs)
    ratio = ours_t / base_t
    ok = ratio <= 1.5 and ours_peak <= 2 * GIB and abs(ours_v - base_v) / base_v < 1e-4
    print(f"[1] Vendi over {n} x {d} unit vectors (float32), median of {runs}:")
    print(f"    bare numpy  {base_t:.3f} s  value {base_v:.4f}  peak {base_peak / 2**20:.0f} MiB")
    print(f"    ise_es      {ours_t:.3f} s  value {ours_v:.4f}  peak {ours_peak / 2**20:.0f} MiB")
    print(f"    ratio {ratio:.2f}x (target <= 1.5)  {'OK' if ok else 'FAIL'}")
    return ok


def intent_texts(count: int) -> list[DiversityItem]:
    lib = load_library()
    pool = make_pool(build_pool(offline_personas(1500, seed=1)).personas[:1000])
    personas = pool.by_id()
    sampler = Sampler(lib, pool, seed=1)
    renderer = TemplateRenderer()
    items = []
    for i in range(count):
        s = sampler.sample(i)
        p = personas[s.persona_id]
        out = renderer.render(make_spec(lib, p, s, sampler.rng_for(i)))
        items.append(
            DiversityItem(
                id=s.intent_id,
                text=out.text or "",
                domains=s.domains,
                industry=p.industry,
                experience_level=p.experience_level,
            )
        )
    return items


def random_encoder(d: int) -> Callable[[list[str]], npt.NDArray[np.float32]]:
    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        out = np.empty((len(texts), d), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
            out[i] = np.random.default_rng(seed).standard_normal(d)
        return out

    return encode


def bench_report(count: int, cache: Path) -> bool:
    t = time.perf_counter()
    items = intent_texts(count)
    print(f"[2] {count} template intents rendered in {time.perf_counter() - t:.1f} s")
    texts = [it.text for it in items]
    filler = Embedder(DEFAULT_MODEL, cache_dir=cache, encode=random_encoder(768))
    t = time.perf_counter()
    filler.embed(texts)
    print(f"    cache filled ({filler.stats.computed} vectors) in {time.perf_counter() - t:.1f} s")
    rerun = Embedder(DEFAULT_MODEL, cache_dir=cache)  # no encoder: a miss would load the model
    t = time.perf_counter()
    report = diversity_report(items, rerun, source="bench", model=DEFAULT_MODEL)
    wall = time.perf_counter() - t
    ok = wall <= 60 and rerun.stats.computed == 0
    print(f"    full report over {report.items} cached embeddings: {wall:.1f} s (target <= 60)")
    print(f"    embedded now: {rerun.stats.computed}, cache hits: {rerun.stats.cache_hits}")
    print("    phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.seconds.items()))
    print(
        f"    Vendi {report.vendi:.1f}, at N=500 "
        f"{report.bootstrap.mean if report.bootstrap else float('nan'):.1f}; "
        f"Self-BLEU {report.self_bleu:.3f}  {'OK' if ok else 'FAIL'}"
    )
    return ok


def throughput(model: str, cache: Path, sets: dict[str, Sequence[str]]) -> None:
    # Vectors in the temporary cache; the assembled model where ise-es keeps it for real runs.
    emb = Embedder(
        model, cache_dir=cache / model, models_dir=default_cache_dir(os.environ) / "models"
    )
    t = time.perf_counter()
    try:
        emb.ensure_available()
    except EmbeddingUnavailable as e:
        print(f"    {model}: not available ({e})")
        return
    load = time.perf_counter() - t
    parts = []
    for name, texts in sets.items():
        t = time.perf_counter()
        emb.embed(texts)
        dt = time.perf_counter() - t
        parts.append(f"{name}: {len(texts) / dt:.1f} texts/s")
        t = time.perf_counter()
        emb.embed(texts)
        parts.append(f"rerun {len(texts) / (time.perf_counter() - t):.0f} texts/s (cache)")
    print(f"    {model}: load {load:.1f} s; " + "; ".join(parts))


SHORT = [
    "Back up my photos folder every night at two and keep the last week of copies.",
    "Find the ten largest files in Downloads and tell me which ones I can delete.",
    "Scrape the price table on the vendor page into a spreadsheet for me.",
    "Summarise this meeting transcript into action items with owners and dates.",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=43_956)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-models", action="store_true")
    args = parser.parse_args(argv)
    ok = bench_vendi(args.items, args.dim, args.runs)
    with tempfile.TemporaryDirectory(prefix="ise-es-divbench-") as tmp:
        ok = bench_report(args.items, Path(tmp)) and ok
        if not args.skip_models:
            print("[3] embedding throughput on CPU (first pass embeds, rerun hits the cache):")
            long_texts: list[Any] = [it.text for it in intent_texts(96)]
            short = [f"{s} (#{i})" for i in range(64) for s in SHORT][:256]
            for model in (SMALL_MODEL, DEFAULT_MODEL):
                sets: dict[str, Sequence[str]] = {
                    "short (~15 words)": short if model == SMALL_MODEL else short[:128],
                    "intents (~150 words)": long_texts if model == SMALL_MODEL else long_texts[:48],
                }
                throughput(model, Path(tmp), sets)
    print("overall:", "OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
