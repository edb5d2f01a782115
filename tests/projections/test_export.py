"""`sft-jsonl` export over a real store: filters, order, splits, atomic files, reruns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ise_es.errors import ConfigError, OutputError
from ise_es.projections.export import (
    ExportOptions,
    export_sft,
    export_types,
    parse_split,
    split_of,
    split_paths,
)
from ise_es.projections.formats import render, resolve_options
from ise_es.projections.session import fold_session
from ise_es.store.engine import Engines, connect_engines
from ise_es.store.sql import SqlEventStore
from tests.projections.builders import SessionBuilder, append_visible, simple_session
from tests.projections.conftest import assert_alternates, assert_valid


@pytest.fixture
def engines(store: SqlEventStore) -> Iterator[Engines]:
    e = connect_engines(store.url)
    yield e
    e.dispose()


@pytest.fixture
def corpus(store: SqlEventStore) -> SqlEventStore:
    # Appended out of id order: the export must sort.
    simple_session("s3", turns=3).append_to(store)
    simple_session("s1", turns=1).append_to(store)
    simple_session("s2", turns=2).append_to(store)
    simple_session("capped", status="turn_cap").append_to(store)
    drift = SessionBuilder("s4")
    drift.user("Sure, let me tell you what I want.")
    drift.agent("Tell me.")
    drift.end().append_to(store)
    return store


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def sid(sample: dict[str, Any]) -> str:
    return str(sample["session_id"])


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "middle"])
def test_every_line_matches_its_schema(
    corpus: SqlEventStore,
    engines: Engines,
    tmp_path: Path,
    fmt: str,
    validators: dict[str, Draft202012Validator],
) -> None:
    out = tmp_path / "sft.jsonl"
    report = export_sft(corpus, out, ExportOptions(render=resolve_options(fmt)))
    samples = lines(out)
    assert report.samples == len(samples) == 4  # completed sessions only
    assert report.bytes == out.stat().st_size
    assert report.skipped == {"status turn_cap": 1}
    for sample in samples:
        assert_valid(validators[fmt], sample)
        if fmt == "sharegpt":
            assert_alternates(sample["conversations"])


def test_order_and_completion_gating(
    corpus: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    out = tmp_path / "m.jsonl"
    export_sft(corpus, out, ExportOptions(render=resolve_options("middle")))
    assert [sid(s) for s in lines(out)] == ["s1", "s2", "s3", "s4"]
    export_sft(corpus, out, ExportOptions(render=resolve_options("middle"), status="any"))
    assert [sid(s) for s in lines(out)] == ["capped", "s1", "s2", "s3", "s4"]
    export_sft(corpus, out, ExportOptions(render=resolve_options("middle"), status="turn_cap"))
    assert [sid(s) for s in lines(out)] == ["capped"]


def test_min_user_turns_and_clean(corpus: SqlEventStore, engines: Engines, tmp_path: Path) -> None:
    out = tmp_path / "m.jsonl"
    middle = resolve_options("middle")
    export_sft(corpus, out, ExportOptions(render=middle, min_user_turns=2))
    assert [sid(s) for s in lines(out)] == ["s2", "s3"]
    report = export_sft(corpus, out, ExportOptions(render=middle, clean=True))
    assert [sid(s) for s in lines(out)] == ["s1", "s2", "s3"]
    assert report.skipped == {"flagged by audit": 1, "status turn_cap": 1}


def test_per_turn_samples(corpus: SqlEventStore, engines: Engines, tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    report = export_sft(corpus, out, ExportOptions(render=resolve_options(samples="per-turn")))
    assert report.samples == 1 + 2 + 3 + 1
    assert report.sessions_exported == 4


def test_split_is_deterministic_and_stable(
    corpus: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    split = parse_split("train=0.5,val=0.5")
    options = ExportOptions(render=resolve_options("middle"), split=split, seed=7, status="any")
    out = tmp_path / "sft.jsonl"
    report = export_sft(corpus, out, options)
    paths = split_paths(out, ["train", "val"])
    assert [Path(f.path) for f in report.files] == [paths["train"], paths["val"]]
    assert not out.exists()
    assigned = {sid(s): name for name, p in paths.items() for s in lines(p)}
    assert sorted(assigned) == ["capped", "s1", "s2", "s3", "s4"]
    assert all(split_of(k, 7, split) == v for k, v in assigned.items())
    simple_session("s0").append_to(corpus)
    export_sft(corpus, out, options)
    again = {sid(s): name for name, p in paths.items() for s in lines(p)}
    assert {k: v for k, v in again.items() if k != "s0"} == assigned
    assert set(again.values()) == {"train", "val"}  # both splits hold sessions here
    other_seed = {k: split_of(k, 8, split) for k in again}
    assert other_seed != again  # and the seed moves some of them


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train=0.9", "add up to 0.9"),
        ("train=0.5,train=0.5", "named twice"),
        ("train:1", "bad split"),
        ("train=-1,val=2", "bad share '-1' for split 'train'"),
        ("train=nan,val=1", "bad share 'nan'"),
        ("train=1.5,val=-0.5", "a share is a number from 0 to 1"),
    ],
)
def test_bad_splits(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_split(text)


def test_rerun_without_new_events_is_a_no_op(
    corpus: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    out = tmp_path / "sft.jsonl"
    options = ExportOptions()
    first = export_sft(corpus, out, options)
    mtime = out.stat().st_mtime_ns
    second = export_sft(corpus, out, options)
    assert second.up_to_date and second.samples == first.samples
    assert out.stat().st_mtime_ns == mtime
    # other options, a changed file, or new events each mean a real export
    assert not export_sft(corpus, out, ExportOptions(min_user_turns=2)).up_to_date
    assert not export_sft(corpus, out, options).up_to_date
    assert export_sft(corpus, out, options).up_to_date
    out.write_text("edited\n")
    assert not export_sft(corpus, out, options).up_to_date
    simple_session("s9").append_to(corpus)
    report = export_sft(corpus, out, options)
    assert not report.up_to_date and report.samples == first.samples + 1
    assert not export_sft(corpus, out, options, force=True).up_to_date


def test_failed_export_leaves_no_file(
    corpus: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    outdir = tmp_path / "out"
    target = outdir / "taken"
    target.mkdir(parents=True)
    (target / "x").write_text("a directory cannot be replaced by a file")
    with pytest.raises(OutputError, match="it is a directory"):
        export_sft(corpus, target, ExportOptions())
    assert sorted(p.name for p in outdir.iterdir()) == ["taken"]
    with pytest.raises(OutputError, match="does not exist"):
        export_sft(corpus, tmp_path / "no" / "out.jsonl", ExportOptions())


def test_redacted_export(store: SqlEventStore, engines: Engines, tmp_path: Path) -> None:
    token = "xoxb-" + "1234567890-abcdefghijkl"
    b = SessionBuilder("sec")
    b.user(f"Post with {token}.")
    b.agent("Posted.")
    b.end().append_to(store)
    out = tmp_path / "r.jsonl"
    report = export_sft(store, out, ExportOptions(clean=True))
    assert report.samples == 0 and report.skipped == {"flagged by audit": 1}
    report = export_sft(store, out, ExportOptions(render=resolve_options(redact=True), clean=True))
    assert report.samples == 1
    assert token not in out.read_text() and "[REDACTED:slack_token]" in out.read_text()


def test_open_sessions_are_never_exported(
    store: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    simple_session("done").append_to(store)
    running = SessionBuilder("running")
    running.user("Start.")
    running.agent("Working on it.")
    running.append_to(store)
    out = tmp_path / "a.jsonl"
    report = export_sft(store, out, ExportOptions(render=resolve_options("middle"), status="any"))
    assert [sid(s) for s in lines(out)] == ["done"]
    assert report.sessions_considered == 1


def test_interleaved_sessions_and_a_tiny_buffer_give_the_same_file(
    store: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    a, b = simple_session("x", turns=3), simple_session("y", turns=2)
    for i in range(max(len(a.events), len(b.events))):
        for s in (a, b):
            if i < len(s.events):
                append_visible(store, s.stream_id, [s.events[i]], i)
    roomy, tiny = tmp_path / "roomy.jsonl", tmp_path / "tiny.jsonl"
    export_sft(store, roomy, ExportOptions())
    export_sft(store, tiny, ExportOptions(), max_buffered=2)
    assert tiny.read_bytes() == roomy.read_bytes()
    assert len(lines(tiny)) == 2


@pytest.mark.parametrize(
    ("fmt", "samples"),
    [
        ("openai", "trajectory"),
        ("openai", "per-turn"),
        ("sharegpt", "per-turn"),
        ("middle", "trajectory"),
    ],
)
def test_each_format_renders_the_same_from_its_export_types(fmt: str, samples: str) -> None:
    """An export folds sessions from `export_types` alone (no model calls or diffs for the chat
    formats): a format that starts reading more must show up here, not as changed files."""
    options = ExportOptions(render=resolve_options(fmt, samples=samples, redact=True))
    wanted = set(export_types(options))
    for session in (simple_session("a", turns=3), simple_session("b", status="stalled")):
        everything = session.stored()
        assert {e.type for e in everything} - wanted  # something is left out
        reduced = [e for e in everything if e.type in wanted]
        assert render(fold_session(reduced), options.render) == render(
            fold_session(everything), options.render
        )
