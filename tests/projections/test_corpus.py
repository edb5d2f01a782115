"""The benchmark's corpus generator, at a size tests can afford: it must keep the paper's shape
and go through every projection."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from ise_es.projections.export import ExportOptions, export_sft
from ise_es.projections.readmodel import AuditModel, StatsModel, catch_up, load_summaries
from ise_es.projections.stats import corpus_stats
from ise_es.store.engine import connect_engines
from ise_es.store.sql import open_store

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_make_corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_corpus", BENCHMARKS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_corpus"] = module
    spec.loader.exec_module(module)
    return module


def test_small_corpus_has_the_table_3_shape(sqlite_url: str, tmp_path: Path) -> None:
    result = load_make_corpus().build(sqlite_url, 120, seed=3, quiet=True)
    assert (result["sessions"], result["trajectories"]) == (124, 120)
    engines = connect_engines(sqlite_url)
    try:
        with open_store(sqlite_url) as store:
            catch_up(store, StatsModel())
            stats = corpus_stats(load_summaries(store))
            assert stats.trajectories == 120
            assert 6.5 < stats.user_turns.avg < 10
            assert 22 < stats.tool_calls.avg < 37
            assert 3.5 < stats.unique_tools.avg < 6
            assert 0.35 < stats.tool_shares["exec"] < 0.6
            assert stats.top_trigrams[0][0] == ["exec", "exec", "exec"]
            caught = catch_up(store, AuditModel())
            assert caught.sessions == 124
            report = export_sft(store, tmp_path / "sft.jsonl", ExportOptions())
            assert report.samples == 120
    finally:
        engines.dispose()
