"""PNG figures of the corpus statistics (matplotlib, headless Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here or in CI; must precede pyplot's import

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ise_es.outputs import atomic_output, prepare_output_dir
from ise_es.projections.stats import CorpusStats

__all__ = ["exit_code_figure", "histogram_figure", "write_plots"]


def _save(fig: Figure, path: Path) -> None:
    # Written beside the target and renamed, so a reader never sees half a PNG, and never over
    # a device, FIFO or directory that has the figure's name (ise_es.outputs).
    try:
        with atomic_output(path, stdout_ok=False) as fh:
            fig.savefig(fh, dpi=120, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)


def _cooccurrence(stats: CorpusStats, path: Path) -> None:
    names = stats.cooccurrence_tools
    data = np.array(stats.cooccurrence, dtype=float) if names else np.zeros((1, 1))
    size = max(5.0, 0.5 * len(names) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    masked = np.ma.masked_less_equal(data, 0)
    vmax = max(float(data.max()), 1.0)
    image = ax.imshow(masked, cmap="viridis", norm=LogNorm(vmin=1, vmax=max(vmax, 10.0)))
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if data[i, j] > 0:
                ax.text(
                    j,
                    i,
                    f"{int(data[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if data[i, j] < vmax**0.5 else "black",
                )
    fig.colorbar(image, ax=ax, label="trajectories using both tools (log10 scale)")
    ax.set_title(f"Tool co-occurrence ({stats.trajectories} trajectories)")
    _save(fig, path)


def _integer_ticks(ax: Axes, *, x: bool = True) -> None:
    """Counts and per-trajectory integers get integer ticks (no 2.5 user turns)."""
    if x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def histogram_figure(values: list[int], title: str, xlabel: str) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    if values:
        top = max(values)
        low = min(values)
        bins: list[float] | int = [b - 0.5 for b in range(low, top + 2)] if top - low <= 60 else 40
        ax.hist(values, bins=bins, color="#3b75af", edgecolor="white")
        mean = float(np.mean(values))
        ax.axvline(mean, color="#c44e52", linestyle="--", label=f"mean {mean:.2f}")
        ax.legend()
    else:
        ax.text(0.5, 0.5, "no trajectories", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("trajectories")
    _integer_ticks(ax)
    return fig


def _code_order(code: str) -> tuple[int, int | str]:
    try:
        return (0, int(code))
    except ValueError:
        return (1, code)


def exit_code_figure(stats: CorpusStats) -> Figure:
    """Tool results per exit code (calls without one, e.g. file tools, are not counted)."""
    codes = sorted(stats.exit_codes, key=_code_order)
    counts = [stats.exit_codes[c] for c in codes]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(codes) + 3.0), 4.5))
    if codes:
        colors = ["#55a868" if c == "0" else "#c44e52" for c in codes]
        bars = ax.bar(range(len(codes)), counts, color=colors, edgecolor="white")
        ax.bar_label(bars, labels=[str(n) for n in counts], fontsize=8)
        ax.set_xticks(range(len(codes)), codes)
    else:
        ax.text(0.5, 0.5, "no exit codes", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"Exit codes ({sum(counts)} tool results with one)")
    ax.set_xlabel("exit code")
    ax.set_ylabel("tool results")
    _integer_ticks(ax, x=False)
    return fig


def write_plots(stats: CorpusStats, directory: str | Path) -> list[Path]:
    """Write the figures into `directory` (created if missing); return their paths.

    Raises:
        OutputError: the directory or a figure cannot be written.
    """
    out = prepare_output_dir(directory)
    paths = [
        out / "tool_cooccurrence.png",
        out / "user_turns_hist.png",
        out / "trajectory_depth_hist.png",
        out / "tool_calls_hist.png",
        out / "exit_codes.png",
    ]
    _cooccurrence(stats, paths[0])
    _save(
        histogram_figure(stats.user_turn_values, "User turns per trajectory", "user turns"),
        paths[1],
    )
    _save(
        histogram_figure(
            stats.dialogue_turn_values,
            "Trajectory depth (dialogue turns: user + assistant + tool messages)",
            "dialogue turns",
        ),
        paths[2],
    )
    _save(
        histogram_figure(stats.tool_call_values, "Tool calls per trajectory", "tool calls"),
        paths[3],
    )
    _save(exit_code_figure(stats), paths[4])
    return paths
