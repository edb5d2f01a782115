"""`ise-es project hf-dataset` over sessions recorded from the shipped scenarios: the folder
loads offline with the real `datasets` library, rows are the JSONL export's samples, the card's
YAML parses and its figures are `project stats`'s, reruns are no-ops until something changes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from ise_es.projections.hfrows import arrow_schema, sample_from_row
from tests.projections.publishing import SCENARIOS, record_scenarios, run

import datasets  # isort: skip  (after publishing.py set the offline variables)


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def front_matter(folder: Path) -> dict[str, Any]:
    text = (folder / "README.md").read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the card starts with YAML front matter"
    meta: dict[str, Any] = yaml.safe_load(match.group(1))
    return meta


def card_table(folder: Path) -> dict[str, str]:
    """The card's Table 3 rows: label -> value."""
    text = (folder / "README.md").read_text()
    section = text.split("## Statistics (Table 3)", 1)[1].split("\n\n", 2)[1]
    rows = [line.strip("|").split("|") for line in section.splitlines()[2:]]
    return {label.strip(): value.strip() for label, value in rows}


def load(folder: Path, cache: Path, **kwargs: Any) -> datasets.DatasetDict:
    result = datasets.load_dataset(str(folder), cache_dir=str(cache), **kwargs)
    assert isinstance(result, datasets.DatasetDict)
    return result


def test_folder_loads_offline_and_rows_are_the_jsonl_samples(db_url: str, tmp_path: Path) -> None:
    record_scenarios(db_url)
    folder = tmp_path / "ds"
    selection = ["--split", "train=0.5,test=0.5", "--seed", "3"]
    code, out, err = run(
        "project", "hf-dataset", "-o", str(folder), *selection,
        "--rows-per-group", "1", "--rows-per-file", "2", "--db", db_url,
    )  # fmt: skip
    assert code == 0, out + err
    code, out, err = run(
        "project", "sft-jsonl", "-o", str(tmp_path / "sft.jsonl"), *selection, "--db", db_url
    )
    assert code == 0, out + err
    expected = {s: jsonl(tmp_path / f"sft.{s}.jsonl") for s in ("train", "test")}
    assert sum(len(v) for v in expected.values()) == 6
    expected = {s: v for s, v in expected.items() if v}  # session ids are random: one may be empty

    by_card = load(folder, tmp_path / "cache1")
    by_files = datasets.load_dataset(
        "parquet", data_dir=str(folder / "data"), cache_dir=str(tmp_path / "cache2")
    )
    card_features = datasets.Features._from_yaml_list(
        front_matter(folder)["dataset_info"]["features"]
    )
    assert set(by_card) == set(by_files) == set(expected)
    for split, samples in expected.items():
        assert by_card[split].num_rows == by_files[split].num_rows == len(samples)
        assert by_card[split].features == by_files[split].features == card_features
        rows = list(by_card[split])
        assert [r["session_id"] for r in rows] == sorted(r["session_id"] for r in rows)
        assert [sample_from_row(r, "openai") for r in rows] == samples
    for name in sorted((folder / "data").iterdir()):
        parquet = pq.ParquetFile(name)
        assert parquet.schema_arrow == arrow_schema("openai")
        assert parquet.metadata.num_rows <= 2
        assert all(
            parquet.metadata.row_group(i).num_rows == 1
            for i in range(parquet.metadata.num_row_groups)
        )
        assert parquet.metadata.row_group(0).column(1).compression == "ZSTD"
        assert re.fullmatch(r"(train|test)-\d{5}-of-\d{5}\.parquet", name.name)


@pytest.mark.parametrize(
    ("fmt", "extra"),
    [("sharegpt", []), ("middle", []), ("openai", ["--samples", "per-turn"])],
)
def test_each_format_round_trips(
    sqlite_url: str, tmp_path: Path, fmt: str, extra: list[str]
) -> None:
    record_scenarios(sqlite_url)
    folder = tmp_path / "ds"
    args = ["--format", fmt, *extra, "--db", sqlite_url]
    assert run("project", "hf-dataset", "-o", str(folder), *args)[0] == 0
    assert run("project", "sft-jsonl", "-o", str(tmp_path / "s.jsonl"), *args)[0] == 0
    samples = jsonl(tmp_path / "s.jsonl")
    rows = list(load(folder, tmp_path / "cache")["train"])
    assert len(rows) == len(samples) >= 6
    assert [sample_from_row(r, fmt) for r in rows] == samples


def test_card_yaml_and_figures_match_project_stats(sqlite_url: str, tmp_path: Path) -> None:
    record_scenarios(sqlite_url)
    folder = tmp_path / "ds"
    code, out, err = run("project", "hf-dataset", "-o", str(folder), "--db", sqlite_url)
    assert code == 0, out + err
    meta = front_matter(folder)
    assert meta["license"] == "other"
    assert "replace `other` with the license" in (folder / "README.md").read_text()
    assert meta["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}
    ]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] == ["text-generation"]
    assert {"agent", "tool-use", "openai"} <= set(meta["tags"])
    assert meta["dataset_info"]["splits"][0]["num_examples"] == 6

    code, out, _ = run("project", "stats", "--json", "--db", sqlite_url)
    stats = json.loads(out)
    table = card_table(folder)
    assert table["trajectories"] == str(stats["trajectories"]) == "6"
    assert table["unique intents"] == str(stats["unique_intents"])
    assert table["completion rate (corpus)"] == f"{stats['completion_rate']:.4f}"
    assert table["user turns avg"] == f"{stats['user_turns']['avg']:g}"
    assert table["user turns max"] == str(stats["user_turns"]["max"])
    assert table["dialogue turns avg"] == f"{stats['dialogue_turns']['avg']:g}"
    assert table["tool calls per trajectory"] == f"{stats['tool_calls']['avg']:g}"
    assert table["unique tools per trajectory"] == f"{stats['unique_tools']['avg']:g}"
    assert table["think tags per trajectory"] == f"{stats['think_tags']['avg']:g}"
    assert table["total tool calls"] == str(stats["total_tool_calls"])
    assert table["failed tool calls"] == str(stats["failed_calls"])
    text = (folder / "README.md").read_text()
    assert "| agent | scripted | scripted:04-shell-errors | 1 |" in text
    assert "| local | 6 |" in text
    assert "100.00% of 27 tool calls well-formed" in text
    for png in ("user_turns_hist.png", "tool_calls_hist.png", "tool_cooccurrence.png"):
        assert f"]({png})" in text and (folder / png).stat().st_size > 1000


def test_manifest_rerun_changed_file_and_new_session(sqlite_url: str, tmp_path: Path) -> None:
    record_scenarios(sqlite_url)
    folder = tmp_path / "ds"
    args = ["project", "hf-dataset", "-o", str(folder), "--db", sqlite_url]
    assert run(*args)[0] == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()
    } - {"manifest.json"}
    assert listed["data/train-00000-of-00001.parquet"]["rows"] == 6
    assert manifest["store"] == {"database": "sqlite", "position": manifest["store"]["position"]}
    assert manifest["store"]["position"] > 0

    code, out, _ = run(*args)
    assert code == 0 and "up to date" in out
    shard = folder / "data" / "train-00000-of-00001.parquet"
    good = shard.read_bytes()
    shard.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    code, out, _ = run(*args)
    assert code == 0 and "up to date" not in out
    assert shard.read_bytes() == good, "the same store gives the same file"

    (folder / "stray.txt").write_text("not ours")
    assert "up to date" not in run(*args)[1]
    assert not (folder / "stray.txt").exists()

    one = tmp_path / "one"
    one.mkdir()
    (one / "x.yaml").write_text((SCENARIOS / "04-shell-errors.yaml").read_text())
    record_scenarios(sqlite_url, one)
    code, out, _ = run(*args)
    assert code == 0 and "7 of 7 sessions exported" in out


def test_refuses_a_folder_it_did_not_write(sqlite_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    code, _, err = run("project", "hf-dataset", "-o", str(folder), "--db", sqlite_url)
    assert code == 2
    assert f"Error: {folder} is not empty and was not written by ise-es" in err
    assert (folder / "notes.txt").read_text() == "keep me"
    code, _, err = run(
        "project", "hf-dataset", "-o", str(tmp_path / "x"), "--format", "middle",
        "--middle-shape", "legacy", "--db", sqlite_url,
    )  # fmt: skip
    assert code == 2 and "current middle shape only" in err
