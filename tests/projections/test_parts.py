"""`project all` split by stream among processes (parts.py) gives what one process gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.errors import ConfigError, StoreUnavailable
from ise_es.events import ReplayEnded, ReplayStarted
from ise_es.projections.export import ExportOptions, parse_split
from ise_es.projections.onepass import OnePass
from ise_es.projections.readmodel import AuditModel, StatsModel
from ise_es.projections.run import AllRun, run_all
from ise_es.store.engine import Engines
from ise_es.store.sql import SqlEventStore, open_store
from tests.projections.builders import SessionBuilder, append_visible, simple_session
from tests.projections.test_onepass import checkpoints, drifting, engines, rows

__all__ = ["engines"]  # the fixture, imported for these tests

OPTIONS = ExportOptions(split=parse_split("train=0.7,val=0.3"), min_user_turns=1)


def corpus(store: SqlEventStore, prefix: str = "") -> None:
    """Sessions of every kind, two of them interleaved event by event, one never ended, and
    replay streams (a replay's events go to whichever part owns its stream)."""
    for n in range(9):
        status = ("completed", "stalled", "error")[n % 3]
        simple_session(f"{prefix}s{n}", status=status, turns=1 + n % 3).append_to(store)
    drifting(f"{prefix}drift").append_to(store)
    a, b = simple_session(f"{prefix}x", turns=3), simple_session(f"{prefix}y", turns=2)
    for i in range(max(len(a.events), len(b.events))):
        for s in (a, b):
            if i < len(s.events):
                append_visible(store, s.stream_id, [s.events[i]], i)
    unfinished = SessionBuilder(f"{prefix}open").user("Start on /tmp/work0 please.")
    append_visible(store, unfinished.stream_id, unfinished.events, 0)
    for n in range(3):
        append_visible(
            store,
            f"replay-{prefix}r{n}",
            [
                ReplayStarted(
                    replay_id=f"{prefix}r{n}",
                    source_stream=f"session-{prefix}s{n}",
                    source_version=9,
                    sandbox_backend="local",
                ),
                ReplayEnded(status="reproduced", determinism=1.0 - n / 4),
            ],
            0,
        )


def files(run: AllRun) -> dict[str | None, bytes]:
    assert run.export is not None
    return {f.split: Path(f.path).read_bytes() for f in run.export.files}


def reports(run: AllRun) -> tuple[object, ...]:
    """What the run reports, less the timings and read counts."""
    assert run.export is not None and run.audit is not None and run.stats is not None
    e = run.export
    return (
        e.sessions_considered,
        e.sessions_exported,
        e.samples,
        e.skipped,
        run.audit.summary,
        run.stats.stats,
        run.audit.catch_up.sessions,
        run.stats.catch_up.sessions,
        run.stats.catch_up.replays,
    )


def test_split_pass_writes_the_same_files_rows_and_reports(
    store: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    corpus(store)
    one = run_all(store, output=tmp_path / "one.jsonl", options=OPTIONS, rebuild=True, workers=1)
    one_rows, one_checkpoints = rows(engines), checkpoints(engines)
    split = run_all(
        store,
        output=tmp_path / "three.jsonl",
        options=OPTIONS,
        rebuild=True,
        workers=3,
        opener=open_store,
    )
    assert rows(engines) == one_rows
    assert list(files(split).values()) == list(files(one).values())
    assert set(files(one)) == {"train", "val"} and all(files(one).values())
    assert reports(split) == reports(one)
    assert (one.parts, split.parts) == (1, 3)
    assert split.events_read == one.events_read  # each event read once, by one part
    # The checkpoints end at the log's last event (one process stops at the last it decoded).
    assert checkpoints(engines).keys() == one_checkpoints.keys()
    assert min(checkpoints(engines).values()) >= max(one_checkpoints.values())
    assert not list(tmp_path.glob(".ise-es-part.*"))  # the parts' spools are gone
    again = OnePass(store, [AuditModel(), StatsModel()])
    again.run()
    assert again.events_read == 0  # nothing left behind the checkpoints


def test_split_pass_catches_up_incrementally(
    store: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    corpus(store)
    run_all(store, projections=["audit", "stats"], workers=2, opener=open_store)
    corpus(store, prefix="late-")  # new sessions; the open one stays open
    caught = run_all(store, projections=["audit", "stats"], workers=2, opener=open_store)
    assert caught.parts == 2
    incremental = rows(engines)
    assert caught.audit is not None and caught.stats is not None
    assert caught.audit.catch_up.sessions == caught.stats.catch_up.sessions == 13
    assert not caught.audit.catch_up.rebuilt
    rebuilt = run_all(store, projections=["audit", "stats"], workers=1, rebuild=True)
    assert rows(engines) == incremental
    assert rebuilt.stats is not None and rebuilt.stats.catch_up.sessions == 26


@pytest.mark.parametrize("output", ["file", "stdout"])
def test_project_all_workers_option(
    db_url: str, store: SqlEventStore, tmp_path: Path, output: str
) -> None:
    corpus(store)
    runner = CliRunner()
    printed = []
    for workers in ("1", "2"):
        out = "-" if output == "stdout" else str(tmp_path / f"w{workers}.jsonl")
        args = ["project", "all", "-o", out, "--rebuild", "--workers", workers, "--db", db_url]
        if output == "file":
            args += ["--split", "train=0.5,val=0.5"]
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output
        printed.append(result.stdout.replace(f"w{workers}", "w"))
    assert printed[0] == printed[1]
    assert "sessions exported" in printed[0] or '"messages"' in printed[0]


def test_workers_without_a_store_opener_is_an_error(store: SqlEventStore) -> None:
    with pytest.raises(ConfigError, match="2 workers need a store opener"):
        run_all(store, projections=["stats"], workers=2)
    # Left to decide, a small log (or no opener) stays in this process.
    assert run_all(store, projections=["stats"], opener=open_store).parts == 1


@pytest.mark.parametrize(
    "command",
    [
        ["sft-jsonl", "-o", "{out}", "--force"],
        ["audit", "--rebuild", "--show", "50"],
        ["stats", "--rebuild", "--status", "any"],
    ],
    ids=["sft-jsonl", "audit", "stats"],
)
def test_each_projection_splits_its_read_alike(
    db_url: str, store: SqlEventStore, tmp_path: Path, command: list[str]
) -> None:
    corpus(store)
    printed, written = [], []
    for workers in ("1", "3"):
        out = tmp_path / f"w{workers}.jsonl"
        args = ["project", *(a.format(out=out) for a in command), "--db", db_url]
        result = CliRunner().invoke(main, [*args, "--workers", workers])
        assert result.exit_code == 0, result.output
        printed.append(result.stdout.replace(str(out), "OUT").rsplit(" (", 1)[0])
        written.append(out.read_bytes() if out.exists() else b"")
        split = "the read split among 3 processes" in result.output
        assert split == (workers == "3"), result.output
    assert printed[0] == printed[1] and printed[0]
    assert written[0] == written[1]


def failing_opener(url: str) -> SqlEventStore:
    """A part's store that cannot be opened (a module-level function: it pickles by name)."""
    raise StoreUnavailable(f"cannot open {url} in this part")


def test_a_failed_part_leaves_every_checkpoint_where_the_pass_began(
    store: SqlEventStore, engines: Engines
) -> None:
    corpus(store)
    run_all(store, projections=["audit", "stats"], workers=1)
    before = checkpoints(engines)
    corpus(store, prefix="late-")
    with pytest.raises(StoreUnavailable, match="in this part"):
        run_all(store, projections=["audit", "stats"], workers=2, opener=failing_opener)
    # This process's part wrote its rows, but no checkpoint moved: the next pass redoes it all.
    assert checkpoints(engines) == before
    redone = run_all(store, projections=["audit", "stats"], workers=1)
    assert redone.stats is not None and redone.stats.catch_up.sessions == 13
    redone_rows = rows(engines)
    run_all(store, projections=["audit", "stats"], workers=1, rebuild=True)
    assert rows(engines) == redone_rows
