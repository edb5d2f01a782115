"""Corpus statistics from per-session summaries, and the plots."""

from __future__ import annotations

import struct
from pathlib import Path

from ise_es.projections.plots import write_plots
from ise_es.projections.session import fold_session
from ise_es.projections.stats import ReplaySummary, corpus_stats, summarize_session
from tests.projections.builders import SessionBuilder, simple_session


def summary(builder: SessionBuilder):  # type: ignore[no-untyped-def]
    return summarize_session(fold_session(builder.stored()))


def failing_then_recovering() -> SessionBuilder:
    b = SessionBuilder(
        "rec",
        intent_record={
            "domains": ["a"],
            "tasks": ["t1", "t2"],
            "tools": ["exec"],
            "complexity": "complex",
        },
    )
    b.user("Build it.")
    b.agent(calls=[("exec", {"command": "make"})], results=[("no rule", 2)])
    b.agent(calls=[("write", {"path": "Makefile", "content": "all:"})], results=["ok"])
    b.agent(calls=[("exec", {"command": "make all"})], results=[("built", 0)])
    b.agent("Built.", reasoning="It worked.")
    b.user("And test it.")
    b.agent(calls=[("exec", {"command": "make test"})], results=[("fail", 1)])
    b.agent("Tests fail.")
    return b.end()


def test_session_summary_counts() -> None:
    s = summary(failing_then_recovering())
    assert s.user_turns == 2
    assert s.tool_calls == 4
    assert s.tool_sequence == ["exec", "write", "exec", "exec"]
    # 2 user + 6 assistant + 4 tool messages; the closing turn is not a dialogue turn
    assert s.dialogue_turns == 12
    assert s.think_messages == 1
    assert s.exit_codes == {"2": 1, "0": 1, "1": 1}
    assert (s.failed_calls, s.recovered_calls) == (2, 1)
    assert (s.domains, s.tasks, s.intent_tools, s.complexity) == (1, 2, 1, "complex")
    assert s.agent_prompt_tokens == 6 * 1000  # six agent model calls
    assert s.user_prompt_tokens == 2 * 50


def test_table_3_and_tool_analyses() -> None:
    sessions = [
        summary(simple_session("a", turns=2)),
        summary(simple_session("b", turns=6)),
        summary(failing_then_recovering()),
        summary(simple_session("c", status="turn_cap")),
        summary(SessionBuilder("open").user("hi")),
    ]
    stats = corpus_stats(
        sessions,
        [
            ReplaySummary(
                replay_id="replay-1",
                source_stream="session-a",
                status="reproduced",
                determinism=1.0,
            ),
            ReplaySummary(
                replay_id="replay-2", source_stream="session-b", status="diverged", determinism=0.5
            ),
        ],
    )
    assert stats.sessions == 5
    assert stats.sessions_by_status == {"completed": 3, "open": 1, "turn_cap": 1}
    assert stats.trajectories == stats.complete_trajectories == 3
    assert stats.completion_rate == 3 / 4
    assert stats.unique_intents == 3
    assert (stats.user_turns.avg, stats.user_turns.median, stats.user_turns.max) == (3.33, 2.0, 6)
    assert stats.share_6_to_10_user_turns == 1 / 3
    assert stats.tool_calls.avg == round((2 + 6 + 4) / 3, 2)
    assert stats.unique_tools.avg == round((1 + 1 + 2) / 3, 2)
    assert stats.total_tool_calls == 12
    assert stats.tool_shares == {"exec": 11 / 12, "write": 1 / 12}
    assert stats.top_trigrams[0] == (["exec", "exec", "exec"], 4 + 0)
    assert stats.cooccurrence_tools == ["exec", "write"]
    assert stats.cooccurrence == [[3, 1], [1, 1]]
    assert (stats.failed_calls, stats.recovered_calls) == (2, 1)
    assert stats.complexity_mix == {"medium": 2 / 3, "complex": 1 / 3}
    assert stats.replays == 2 and stats.determinism_rate == 0.75
    text = "\n".join(stats.lines())
    assert "completion rate                75.00% of 4 ended sessions" in text
    assert "determinism rate 75.00%" in text


def test_any_status_and_no_replays() -> None:
    sessions = [summary(simple_session("a")), summary(simple_session("c", status="stalled"))]
    stats = corpus_stats(sessions, status="any")
    assert stats.trajectories == 2
    assert stats.determinism_rate is None
    assert "Replays: none recorded" in "\n".join(stats.lines())


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plots_are_written(tmp_path: Path) -> None:
    sessions = [summary(simple_session(f"s{i}", turns=1 + i % 7)) for i in range(20)]
    sessions.append(summary(failing_then_recovering()))
    paths = write_plots(corpus_stats(sessions), tmp_path / "plots")
    assert [p.name for p in paths] == [
        "tool_cooccurrence.png",
        "user_turns_hist.png",
        "trajectory_depth_hist.png",
        "tool_calls_hist.png",
        "exit_codes.png",
    ]
    for p in paths:
        width, height = png_size(p)
        assert width > 300 and height > 200
    assert not list((tmp_path / "plots").glob(".*.tmp"))


def test_plots_of_an_empty_corpus(tmp_path: Path) -> None:
    paths = write_plots(corpus_stats([]), tmp_path)
    assert all(p.stat().st_size > 0 for p in paths)
