"""`project all`: export, audit and stats from one read of the log, each with its checkpoint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from cli import main
from ise_es.events import ReplayEnded, ReplayStarted
from ise_es.projections.export import ExportOptions, export_sft
from ise_es.projections.onepass import OnePass
from ise_es.projections.readmodel import AuditModel, StatsModel, catch_up
from ise_es.projections.run import run_all
from ise_es.projections.session import SESSION_EVENT_TYPES
from ise_es.projections.tables import (
    audit_findings,
    audit_sessions,
    replay_summaries,
    session_summaries,
)
from ise_es.store.engine import Engines, connect_engines
from ise_es.store.schema import projection_checkpoints
from ise_es.store.sql import SqlEventStore
from tests.projections.builders import SessionBuilder, append_visible, simple_session

TABLES = (session_summaries, replay_summaries, audit_sessions, audit_findings)


@pytest.fixture
def engines(store: SqlEventStore) -> Iterator[Engines]:
    e = connect_engines(store.url)
    yield e
    e.dispose()


def rows(engines: Engines) -> dict[str, list[tuple[object, ...]]]:
    with engines.read.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in TABLES}


def checkpoints(engines: Engines) -> dict[str, int]:
    """The read models' checkpoints (an export's, one per output file, are left out)."""
    with engines.read.connect() as conn:
        names = conn.execute(
            sa.select(projection_checkpoints.c.name, projection_checkpoints.c.position)
        ).all()
    return {name: position for name, position in names if not name.startswith("export@")}


def drifting(session_id: str) -> SessionBuilder:
    b = SessionBuilder(session_id)
    b.user("I'd be happy to explain what I need.")
    b.agent("Go on.")
    return b.end()


def corpus(store: SqlEventStore) -> None:
    simple_session("a").append_to(store)
    simple_session("b", status="stalled", turns=3).append_to(store)
    drifting("drift").append_to(store)
    append_visible(
        store,
        "replay-r1",
        [
            ReplayStarted(
                replay_id="r1", source_stream="session-a", source_version=9, sandbox_backend="local"
            ),
            ReplayEnded(status="reproduced", determinism=1.0),
        ],
        0,
    )


def test_one_read_gives_what_three_separate_runs_give(
    store: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    corpus(store)
    alone = tmp_path / "alone.jsonl"
    export_sft(store, alone, ExportOptions())
    catch_up(store, StatsModel())
    catch_up(store, AuditModel())
    separate, separate_checkpoints = rows(engines), checkpoints(engines)

    together = tmp_path / "together.jsonl"
    run = run_all(store, output=together, options=ExportOptions(), rebuild=True)
    assert rows(engines) == separate
    # Both models are at the last event read (audit alone stops at the last session event:
    # the replay events after it are not its types, and it has nothing to do for them).
    assert set(checkpoints(engines).values()) == {separate_checkpoints[StatsModel.name]}
    assert together.read_bytes() == alone.read_bytes()
    assert run.export is not None and run.export.sessions_exported == 2  # a and drift completed
    assert run.audit is not None and [a.session_id for a in run.audit.flagged] == ["drift"]
    assert run.stats is not None and run.stats.stats.determinism_rate == pytest.approx(1.0)
    # Each event of the types the three read was decoded once, and no other event at all.
    read_types = {*SESSION_EVENT_TYPES, "replay_started", "replay_ended"}
    assert run.events_read == sum(1 for e in store.read_all() if e.type in read_types)
    assert run.events_read < len(store.read_all())  # chunks and ToolCallStarted are skipped


def test_each_model_keeps_its_own_checkpoint(store: SqlEventStore, engines: Engines) -> None:
    corpus(store)
    catch_up(store, StatsModel())
    stats_rows = rows(engines)[session_summaries.name]
    simple_session("late").append_to(store)
    # Stats is behind by one session, audit has never run (its checkpoint is missing).
    one = OnePass(store, [StatsModel(), AuditModel()])
    last = one.run()
    stats, audit = one.results()
    assert (stats.rebuilt, stats.sessions) == (False, 1)
    assert (audit.rebuilt, audit.sessions) == (True, 4)
    assert checkpoints(engines)[StatsModel.name] == last == audit.position
    assert len(rows(engines)[session_summaries.name]) == len(stats_rows) + 1
    nothing = OnePass(store, [StatsModel(), AuditModel()])
    nothing.run()
    assert [r.sessions for r in nothing.results()] == [0, 0]
    assert nothing.events_read == 0


def test_up_to_date_export_still_catches_the_models_up(
    store: SqlEventStore, engines: Engines, tmp_path: Path
) -> None:
    corpus(store)
    out = tmp_path / "sft.jsonl"
    export_sft(store, out, ExportOptions())
    run = run_all(store, output=out, options=ExportOptions())
    assert run.export is not None and run.export.up_to_date
    assert run.stats is not None and run.stats.catch_up.sessions == 3
    assert run.audit is not None and run.audit.catch_up.sessions == 3


def test_without_export_and_with_a_bounded_buffer(store: SqlEventStore, engines: Engines) -> None:
    # Two sessions interleaved event by event: neither is ever whole in the buffer.
    a, b = simple_session("x", turns=3), simple_session("y", turns=2)
    for i in range(max(len(a.events), len(b.events))):
        for s in (a, b):
            if i < len(s.events):
                append_visible(store, s.stream_id, [s.events[i]], i)
    catch_up(store, StatsModel())
    catch_up(store, AuditModel())
    expected = rows(engines)
    seen: list[str] = []
    one = OnePass(store, [StatsModel(), AuditModel()], rebuild=True, max_buffered=3)
    one.run(lambda view: seen.append(view.session_id))
    assert rows(engines) == expected
    assert sorted(seen) == ["x", "y"]  # both reached the export whole, once
    run = run_all(store, projections=["audit", "stats"])
    assert run.export is None and run.events_read == 0


def test_project_all_command(store: SqlEventStore, tmp_path: Path) -> None:
    corpus(store)
    out = tmp_path / "sft.jsonl"
    result = CliRunner().invoke(main, ["project", "all", "-o", str(out), "--db", store.url])
    assert result.exit_code == 0, result.output
    assert f"{out}: 2 samples" in result.stdout
    assert "2 of 3 sessions exported" in result.stdout
    assert "one read:" in result.stderr
    assert out.read_text().count("\n") == 2
    missing = CliRunner().invoke(main, ["project", "all", "--db", store.url])
    assert missing.exit_code == 2 and "needs -o FILE" in missing.stderr
    bad = CliRunner().invoke(main, ["project", "all", "--with", "audit,nope", "--db", store.url])
    assert bad.exit_code == 2 and "nope" in bad.stderr
    models = CliRunner().invoke(
        main, ["project", "all", "--with", "audit,stats", "--db", store.url]
    )
    assert models.exit_code == 0, models.output
    assert "one read: 0 events decoded" in models.stderr  # everything was already current
