"""Incremental read models: checkpoints, reruns that read only new events, identical rebuilds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ise_es.events import ReplayEnded, ReplayStarted
from ise_es.projections.audit import load_lexicon
from ise_es.projections.readmodel import (
    AuditModel,
    StatsModel,
    catch_up,
    load_audits,
    load_replays,
    load_summaries,
)
from ise_es.projections.session import SessionView
from ise_es.projections.stats import corpus_stats
from ise_es.projections.tables import audit_findings, session_summaries
from ise_es.store.engine import Engines, connect_engines
from ise_es.store.schema import projection_checkpoints
from ise_es.store.sql import SqlEventStore
from tests.projections.builders import SessionBuilder, append_visible, simple_session


@pytest.fixture
def engines(store: SqlEventStore) -> Iterator[Engines]:
    e = connect_engines(store.url)
    yield e
    e.dispose()


def rows(engines: Engines, table: sa.Table) -> list[tuple[object, ...]]:
    with engines.read.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(sa.select(table)))


def checkpoint(engines: Engines, name: str) -> int | None:
    with engines.read.connect() as conn:
        return conn.execute(
            sa.select(projection_checkpoints.c.position).where(
                projection_checkpoints.c.name == name
            )
        ).scalar_one_or_none()


def drifting(session_id: str) -> SessionBuilder:
    b = SessionBuilder(session_id)
    b.user("I'd be happy to explain what I need.")
    b.agent("Go on.")
    return b.end()


def test_rerun_reads_only_new_events_and_rebuild_is_identical(
    store: SqlEventStore, engines: Engines
) -> None:
    for b in (simple_session("a"), simple_session("b", status="stalled")):
        b.append_to(store)
    first = catch_up(store, StatsModel())
    assert first.rebuilt and first.sessions == 2
    nothing = catch_up(store, StatsModel())
    assert (nothing.rebuilt, nothing.events, nothing.sessions) == (False, 0, 0)
    assert nothing.position == first.position == checkpoint(engines, StatsModel.name)
    c = simple_session("c", turns=3)
    c.append_to(store)
    more = catch_up(store, StatsModel())
    skipped = sum(1 for e in c.events if type(e).__name__ in ("OutputChunk", "ToolCallStarted"))
    assert (more.events, more.sessions) == (len(c.events) - skipped, 1)
    incremental = rows(engines, session_summaries)
    rebuilt = catch_up(store, StatsModel(), rebuild=True)
    assert rebuilt.rebuilt and rebuilt.sessions == 3
    assert rows(engines, session_summaries) == incremental
    assert [s.session_id for s in load_summaries(store)] == ["a", "b", "c"]


def test_a_session_seen_open_is_updated_when_it_ends(
    store: SqlEventStore, engines: Engines
) -> None:
    b = simple_session("late")
    ended_at = len(b.events) - 2  # closing turn + SessionEnded come later
    append_visible(store, b.stream_id, b.events[:ended_at], 0)
    catch_up(store, StatsModel())
    [open_summary] = load_summaries(store)
    assert open_summary.status is None
    append_visible(store, b.stream_id, b.events[ended_at:], ended_at)
    result = catch_up(store, StatsModel())
    assert (result.events, result.sessions) == (2, 1)
    [summary] = load_summaries(store)
    assert summary.status == "completed"
    assert summary.tool_calls == 2  # the whole stream was refolded, not just the tail


def test_bounded_buffer_gives_the_same_rows(store: SqlEventStore, engines: Engines) -> None:
    # Interleave two sessions event by event so neither is ever whole in one place.
    a, b = simple_session("x", turns=3), simple_session("y", turns=2)
    for i in range(max(len(a.events), len(b.events))):
        for s in (a, b):
            if i < len(s.events):
                append_visible(store, s.stream_id, [s.events[i]], i)
    catch_up(store, StatsModel(), max_buffered=3)
    small = rows(engines, session_summaries)
    catch_up(store, StatsModel(), rebuild=True)
    assert rows(engines, session_summaries) == small


def test_checkpoint_and_rows_commit_together(store: SqlEventStore, engines: Engines) -> None:
    simple_session("ok").append_to(store)
    catch_up(store, StatsModel())
    before_rows, before = rows(engines, session_summaries), checkpoint(engines, StatsModel.name)

    class Failing(StatsModel):
        def write_sessions(self, conn: sa.Connection, views: list[SessionView]) -> None:
            super().write_sessions(conn, views)
            raise RuntimeError("disk full")

    simple_session("boom").append_to(store)
    with pytest.raises(RuntimeError, match="disk full"):
        catch_up(store, Failing())
    assert rows(engines, session_summaries) == before_rows
    assert checkpoint(engines, StatsModel.name) == before
    assert catch_up(store, StatsModel()).sessions == 1


def test_replays_give_the_determinism_rate(store: SqlEventStore, engines: Engines) -> None:
    simple_session("src").append_to(store)
    for rid, det, status in (("r1", 1.0, "reproduced"), ("r2", 0.8, "diverged")):
        append_visible(
            store,
            f"replay-{rid}",
            [
                ReplayStarted(
                    replay_id=rid,
                    source_stream="session-src",
                    source_version=9,
                    sandbox_backend="local",
                ),
                ReplayEnded(status=status, determinism=det),  # type: ignore[arg-type]
            ],
            0,
        )
    catch_up(store, StatsModel())
    replays = load_replays(store)
    assert [(r.replay_id, r.source_stream) for r in replays] == [
        ("replay-r1", "session-src"),
        ("replay-r2", "session-src"),
    ]
    stats = corpus_stats(load_summaries(store), replays)
    assert stats.determinism_rate == pytest.approx(0.9)


def test_audit_model_incremental_rebuild_and_lexicon_change(
    store: SqlEventStore, engines: Engines
) -> None:
    simple_session("clean").append_to(store)
    drifting("drift").append_to(store)
    catch_up(store, AuditModel())
    drifting("drift2").append_to(store)
    assert catch_up(store, AuditModel()).sessions == 1
    incremental = rows(engines, audit_findings)
    assert [r[2] for r in incremental] == ["role_drift", "role_drift"]
    catch_up(store, AuditModel(), rebuild=True)
    assert rows(engines, audit_findings) == incremental
    audits = load_audits(store)
    assert [(a.session_id, len(a.findings)) for a in audits] == [
        ("clean", 0),
        ("drift", 1),
        ("drift2", 1),
    ]
    # Another lexicon is another checkpoint: a full rebuild with the new phrases only.
    other = AuditModel(["explain what i need"])
    assert other.name != AuditModel(load_lexicon()).name
    result = catch_up(store, other)
    assert result.rebuilt and result.sessions == 3
    assert [len(a.findings) for a in load_audits(store)] == [0, 1, 1]
    assert checkpoint(engines, AuditModel().name) is None
