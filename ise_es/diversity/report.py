"""The diversity report: how diverse a corpus of texts (intents or first user turns) is.

The report follows the paper's measurements:
- Vendi Score of order q (cosine kernel over sentence embeddings) over the full pool;
- a bootstrap at N=500 (mean and std over 30 seeded draws without replacement), comparable
  across corpora of different sizes, and the scaling curve over N in {200, 500, 1k, 2k, 5k,
  10k, 20k, full}, drawn as a PNG;
- Distinct-1/2/3 with the length-normalised protocol (first K tokens, K in {20, 50}, 5,000
  samples) and Self-BLEU on a seeded subsample;
- the same broken down by slice: multi- vs single-domain, industry and experience level.

Embeddings come from an injected function (texts -> rows), in practice an
`ise_es.intents.embeddings.Embedder` with its digest cache; everything else is numpy. Where
the texts come from is the callers' business: `ise_es.intents.diversity` (accepted intents,
an intents file) and `ise_es.projections.diversity` (first user turns of recorded sessions)
turn their sources into `DiversityItem`s. The report lives below both stages so that neither
imports the other.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import numpy.typing as npt

from ise_es.diversity.metrics import distinct_n, self_bleu, vendi_score
from ise_es.outputs import atomic_output

__all__ = [
    "DiversityItem",
    "DiversityOptions",
    "DiversityReport",
    "EmbedFn",
    "diversity_report",
    "format_report",
    "item_from_record",
    "plot_scaling_curve",
    "write_report",
]

EmbedFn = Callable[[Sequence[str]], npt.NDArray[np.float32]]
_T = TypeVar("_T")


class DiversityItem(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    text: str
    domains: list[str] = []
    industry: str | None = None
    experience_level: str | None = None


def item_from_record(rec: dict[str, Any], text: str, item_id: str) -> DiversityItem:
    """An item from a reference-schema intent record (domains, metadata.persona)."""
    meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
    persona = meta.get("persona") if isinstance(meta, dict) else None
    persona = persona if isinstance(persona, dict) else {}
    domains = rec.get("domains")
    return DiversityItem(
        id=item_id,
        text=text,
        domains=[str(d) for d in domains] if isinstance(domains, list) else [],
        industry=persona.get("industry") or None,
        experience_level=persona.get("experience_level") or None,
    )


class DiversityOptions(msgspec.Struct, frozen=True, kw_only=True):
    q: float = 1.0
    bootstrap_n: int = 500
    bootstrap_draws: int = 30
    curve_sizes: tuple[int, ...] = (200, 500, 1000, 2000, 5000, 10000, 20000)
    curve_draws: int = 5
    distinct_k: tuple[int, ...] = (20, 50)
    distinct_samples: int = 5000
    self_bleu_samples: int = 1000
    slice_min: int = 20
    """Slices smaller than this are listed with their size only."""
    slice_n: int = 100
    """Size of the draws behind each slice's comparable Vendi (`vendi_at_n`)."""
    slice_draws: int = 10
    seed: int = 0


class Stat(msgspec.Struct, frozen=True, kw_only=True):
    n: int
    mean: float
    std: float
    draws: int


class SliceRow(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    """domains | industry | experience_level."""
    group: str
    n: int
    vendi: float | None = None
    vendi_at_n: Stat | None = None
    distinct_2: float | None = None
    """Distinct-2 at the smallest K, over the slice's eligible texts."""


class DiversityReport(msgspec.Struct, kw_only=True):
    source: str
    model: str
    items: int
    dim: int
    q: float
    vendi: float
    bootstrap: Stat | None
    curve: list[Stat]
    distinct: dict[str, dict[str, float | int | None]]
    """Per K: Distinct-n (None when no text has K tokens), samples and eligible texts."""
    self_bleu: float
    self_bleu_samples: int
    slices: list[SliceRow]
    seconds: dict[str, float]
    note: str = ""
    """Why the texts are not the source asked for (no intents: first user turns instead)."""
    embedded_now: int = 0
    """Texts the model embedded in this run (0 when every vector came from the cache)."""
    cache_hits: int = 0


def _draws(
    x: npt.NDArray[np.float32], n: int, draws: int, q: float, rng: np.random.Generator
) -> Stat:
    if n >= len(x):
        value = vendi_score(x, q)
        return Stat(n=len(x), mean=value, std=0.0, draws=1)
    values = [vendi_score(x[rng.choice(len(x), size=n, replace=False)], q) for _ in range(draws)]
    return Stat(n=n, mean=float(np.mean(values)), std=float(np.std(values)), draws=draws)


def _slices(items: Sequence[DiversityItem]) -> dict[tuple[str, str], list[int]]:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, it in enumerate(items):
        nd = len(it.domains)
        groups[("domains", "multi" if nd > 1 else "single" if nd == 1 else "none")].append(i)
        groups[("industry", it.industry or "(unknown)")].append(i)
        groups[("experience_level", it.experience_level or "(unknown)")].append(i)
    return groups


def diversity_report(
    items: Sequence[DiversityItem],
    embed: EmbedFn,
    *,
    options: DiversityOptions | None = None,
    source: str = "intents",
    model: str = "",
    clock: Callable[[], float] = time.perf_counter,
) -> DiversityReport:
    """Compute every measurement of the module docstring over `items`.

    Raises:
        ValueError: fewer than two items.
    """
    options = options or DiversityOptions()
    if len(items) < 2:
        raise ValueError(f"diversity needs at least 2 texts, got {len(items)}")
    watch = _Stopwatch(clock)
    texts = [it.text for it in items]
    x = np.asarray(embed(texts), dtype=np.float32)
    watch.seconds["embed"] = clock() - watch.started
    rng = np.random.default_rng(options.seed)  # drawn from in this order: curve, then slices
    q = options.q
    full = watch.time("vendi", lambda: vendi_score(x, q))
    bootstrap, curve = watch.time("bootstrap_curve", lambda: _curve(x, full, options, rng))
    distinct = watch.time(
        "distinct",
        lambda: {
            f"k{k}": distinct_n(
                texts, k_tokens=k, samples=options.distinct_samples, seed=options.seed
            )
            for k in options.distinct_k
        },
    )
    sb = watch.time(
        "self_bleu",
        lambda: self_bleu(texts, samples=options.self_bleu_samples, seed=options.seed),
    )
    rows = watch.time("slices", lambda: _slice_rows(items, texts, x, options, rng))
    watch.seconds["total"] = clock() - watch.started
    return DiversityReport(
        source=source,
        model=model,
        items=len(x),
        dim=int(x.shape[1]),
        q=q,
        vendi=full,
        bootstrap=bootstrap,
        curve=curve,
        distinct=distinct,
        self_bleu=sb,
        self_bleu_samples=min(options.self_bleu_samples, len(texts)),
        slices=rows,
        seconds={k: round(v, 4) for k, v in watch.seconds.items()},
    )


class _Stopwatch:
    """Seconds per named stage of the report, from one injected clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self.seconds: dict[str, float] = {}

    def time(self, name: str, fn: Callable[[], _T]) -> _T:
        t = self.clock()
        value = fn()
        self.seconds[name] = self.clock() - t
        return value


def _curve(
    x: npt.NDArray[np.float32], full: float, options: DiversityOptions, rng: np.random.Generator
) -> tuple[Stat | None, list[Stat]]:
    """The Vendi Score at `bootstrap_n` items (None with fewer) and at every curve size,
    ending with all items."""
    q = options.q
    bootstrap = None
    if len(x) >= options.bootstrap_n:
        bootstrap = _draws(x, options.bootstrap_n, options.bootstrap_draws, q, rng)
    curve = [_draws(x, n, options.curve_draws, q, rng) for n in options.curve_sizes if n < len(x)]
    curve.append(Stat(n=len(x), mean=full, std=0.0, draws=1))
    return bootstrap, curve


def _slice_rows(
    items: Sequence[DiversityItem],
    texts: list[str],
    x: npt.NDArray[np.float32],
    options: DiversityOptions,
    rng: np.random.Generator,
) -> list[SliceRow]:
    """One row per slice (domains, industry, experience level); a slice smaller than
    `slice_min` gets its size only."""
    rows = []
    for (kind, group), idx in sorted(_slices(items).items()):
        if len(idx) < options.slice_min:
            rows.append(SliceRow(kind=kind, group=group, n=len(idx)))
            continue
        sub = x[np.asarray(idx)]
        at_n = None
        if len(idx) >= options.slice_n:
            at_n = _draws(sub, options.slice_n, options.slice_draws, options.q, rng)
        d = distinct_n(
            [texts[i] for i in idx],
            n_values=(2,),
            k_tokens=min(options.distinct_k),
            samples=options.distinct_samples,
            seed=options.seed,
        )
        rows.append(
            SliceRow(
                kind=kind,
                group=group,
                n=len(idx),
                vendi=vendi_score(sub, options.q),
                vendi_at_n=at_n,
                distinct_2=float(d2) if (d2 := d["distinct_2"]) is not None else None,
            )
        )
    return rows


def write_report(report: DiversityReport, path: Path) -> None:
    """The report as JSON, complete or not at all; `-` writes it to standard output.

    Raises:
        OutputError: the output cannot or must not be written (see `ise_es.outputs`).
    """
    data = msgspec.json.format(msgspec.json.encode(report), indent=2)
    with atomic_output(path) as fh:
        fh.write(data + b"\n")


def plot_scaling_curve(report: DiversityReport, path: Path) -> None:
    """Vendi Score against sample size (log x), mean +- std per size, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    try:
        ns = [s.n for s in report.curve]
        ax.errorbar(
            ns,
            [s.mean for s in report.curve],
            yerr=[s.std for s in report.curve],
            marker="o",
            capsize=3,
            label=f"{report.source} ({report.items} items)",
        )
        ax.set_xscale("log")
        ax.set_xticks(ns, [f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}" for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("sample size N")
        ax.set_ylabel(f"Vendi Score (q={report.q:g})")
        ax.set_title(f"Vendi scaling curve - {report.model or 'embeddings'}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right")
        fig.tight_layout()
        with atomic_output(path, stdout_ok=False) as fh:
            fig.savefig(fh, format="png")
    finally:
        plt.close(fig)


def format_report(report: DiversityReport) -> str:
    """A plain-text summary for the terminal."""
    lines = [f"note: {report.note}"] if report.note else []
    lines += [
        f"source: {report.source}   items: {report.items}   model: {report.model} "
        f"(dim {report.dim})",
        f"Vendi Score (q={report.q:g}), full pool: {report.vendi:.2f}",
    ]
    if report.bootstrap is not None:
        b = report.bootstrap
        lines.append(f"Vendi at N={b.n}: {b.mean:.2f} +- {b.std:.2f} ({b.draws} seeded draws)")
    lines.append("scaling curve: " + ", ".join(f"N={s.n}: {s.mean:.2f}" for s in report.curve))
    for key, d in report.distinct.items():
        if not d["samples"]:
            lines.append(f"Distinct-N (K={key[1:]}, 0 samples): n/a (no text has {key[1:]} tokens)")
            continue
        grams = " ".join(
            f"D-{k.split('_')[1]}={v:.3f}"
            for k, v in d.items()
            if k.startswith("distinct_") and v is not None
        )
        lines.append(f"Distinct-N (K={key[1:]}, {d['samples']} samples): {grams}")
    lines.append(f"Self-BLEU ({report.self_bleu_samples} samples): {report.self_bleu:.3f}")
    lines.append("slices (n, Vendi, Vendi@N mean+-std, Distinct-2):")
    for row in report.slices:
        if row.vendi is None:
            lines.append(f"  {row.kind:<17} {row.group:<24} n={row.n:<6} (too few)")
            continue
        at = (
            f"{row.vendi_at_n.mean:6.2f}+-{row.vendi_at_n.std:4.2f}@{row.vendi_at_n.n}"
            if row.vendi_at_n
            else "-"
        )
        d2 = f"{row.distinct_2:.3f}" if row.distinct_2 is not None else "-"
        lines.append(
            f"  {row.kind:<17} {row.group:<24} n={row.n:<6} {row.vendi:7.2f}  {at:<18} {d2}"
        )
    lines.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in report.seconds.items()))
    lines.append(f"embedded now: {report.embedded_now}, from cache: {report.cache_hits}")
    return "\n".join(lines)
