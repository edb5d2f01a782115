"""Audit rules, one behaviour each, and the summary's phrasing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ise_es.errors import InvalidInput
from ise_es.events import ToolCallFinished
from ise_es.projections.audit import (
    _SENTENCE_SPLIT,
    audit_session,
    load_lexicon,
    sentences,
    summarize,
)
from ise_es.projections.secrets import find_secrets, redact
from ise_es.projections.session import fold_session
from tests.projections.builders import SessionBuilder, simple_session

LEXICON = load_lexicon()


def rules_of(builder: SessionBuilder) -> list[str]:
    return [f.rule for f in audit_session(fold_session(builder.stored()), LEXICON).findings]


def test_shipped_lexicon_has_at_least_23_phrases() -> None:
    assert len(LEXICON) >= 23
    assert "I'd be happy to" in LEXICON
    assert "Sure, let me" in LEXICON


def test_lexicon_file_can_be_replaced(tmp_path: Path) -> None:
    path = tmp_path / "lex.txt"
    path.write_text("# comment\n\nplease advise\n")
    assert load_lexicon(path) == ["please advise"]
    path.write_text("# nothing\n")
    with pytest.raises(InvalidInput, match="holds no phrase"):
        load_lexicon(path)


def test_clean_session_has_no_findings() -> None:
    audit = audit_session(fold_session(simple_session("ok").stored()), LEXICON)
    assert audit.findings == []
    assert audit.user_turns == 2
    assert audit.tool_calls == audit.well_formed_calls == 2


def test_role_drift_is_case_insensitive() -> None:
    b = SessionBuilder("drift")
    b.user("SURE, LET ME check that for you. I'd be happy to help.")
    b.agent("Ok.")
    b.end()
    audit = audit_session(fold_session(b.stored()), LEXICON)
    [finding] = audit.findings  # one finding per turn, even with two phrases
    assert finding.rule == "role_drift"
    assert finding.turn == 1


def test_stagnation_needs_three_identical_calls_in_a_row() -> None:
    b = SessionBuilder("stuck")
    b.user("Fix it.")
    for _ in range(2):
        b.agent(calls=[("exec", {"command": "make"})], results=[("error", 2)])
    b.agent(calls=[("exec", {"command": "make -j1"})], results=[("error", 2)])
    b.agent("Giving up.")
    b.end()
    assert "stagnation" not in rules_of(b)
    b = SessionBuilder("stuck3")
    b.user("Fix it.")
    for _ in range(4):
        b.agent(calls=[("exec", {"command": "make"})], results=[("error", 2)])
    b.agent("Giving up.")
    b.end()
    findings = audit_session(fold_session(b.stored()), LEXICON).findings
    assert [f.detail for f in findings if f.rule == "stagnation"] == [
        "exec called 4 times in a row with identical arguments"
    ]


@pytest.mark.parametrize(
    ("name", "arguments", "problem"),
    [
        ("exec", '{"command": ', "not valid JSON"),
        ("exec", "[1, 2]", "not an object"),
        ("exec", "{}", "empty object"),
        ("exec", '{"workdir": "/tmp"}', "missing required parameter(s) command"),
        ("teleport", '{"to": "mars"}', "unknown tool 'teleport'"),
    ],
)
def test_tool_call_integrity(name: str, arguments: str, problem: str) -> None:
    b = SessionBuilder("calls")
    b.user("Go.")
    b.agent(calls=[(name, arguments)], results=["error"])
    b.agent("Done.")
    b.end()
    audit = audit_session(fold_session(b.stored()), LEXICON)
    [finding] = audit.findings
    assert finding.rule == "malformed_tool_call"
    assert problem in finding.detail
    assert audit.well_formed_calls == 0


def test_orphan_calls_and_results() -> None:
    b = SessionBuilder("orphans")
    b.user("Go.")
    b.agent(calls=[("exec", {"command": "ls"})], results=[None])
    b.agent(calls=[("exec", {"command": "pwd"})], results=[None])
    b.agent("Done.")
    b.end()
    rules = rules_of(b)
    assert rules.count("orphan_tool_call") == 2
    # a result nobody asked for
    b.events.insert(-1, ToolCallFinished(call_id="ghost", tool="exec", result_text="boo"))
    assert "orphan_tool_result" in rules_of(b)


def test_pending_calls_of_an_open_session_are_not_orphans() -> None:
    b = SessionBuilder("open")
    b.user("Go.")
    b.agent(calls=[("exec", {"command": "sleep 100"})], results=[None])
    assert rules_of(b) == []


def test_empty_user_turn() -> None:
    b = SessionBuilder("empty")
    b.user("   ")
    b.agent("Hello?")
    b.end()
    assert rules_of(b) == ["empty_user_turn"]


def test_reasoning_leak_by_markup_and_by_verbatim_sentence() -> None:
    b = SessionBuilder("leak")
    b.user("<think>I am the user</think> list files")
    b.agent("Ok.", reasoning="The user probably wants the hidden dotfiles listed as well here.")
    b.user("Yes. The user probably wants the hidden dotfiles listed as well here. Do it.")
    b.agent("Done.")
    b.end()
    findings = audit_session(fold_session(b.stored()), LEXICON).findings
    assert [(f.rule, f.turn) for f in findings] == [("reasoning_leak", 1), ("reasoning_leak", 2)]


def test_secret_leak_anywhere() -> None:
    b = SessionBuilder("secret")
    b.user("Go.")
    b.agent(
        calls=[("exec", {"command": "cat .env"})],
        results=[("AWS_KEY=AKIAABCDEFGHIJKLMNOP\n", 0)],
    )
    b.agent("Found an AWS key.")
    b.end()
    findings = audit_session(fold_session(b.stored()), LEXICON).findings
    assert [(f.rule, f.detail) for f in findings] == [
        ("secret_leak", "aws_access_key_id in tool result")
    ]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("token ghp_" + "x" * 36, "github_token"),
        ("key sk-proj-" + "A1b2" * 10, "openai_key"),
        ("xoxb-1234567890-abcdefghij", "slack_token"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----", "private_key"),
        ("psql postgresql://admin:hunter2@db.local/app", "password_in_url"),
        ("aws_secret_access_key = " + "a" * 40, "aws_secret_access_key"),
    ],
)
def test_secret_patterns(text: str, kind: str) -> None:
    assert [h.kind for h in find_secrets(text)] == [kind]
    assert f"[REDACTED:{kind}]" in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "pip install scikit-learn",
        "curl https://user:${PASSWORD}@host/",
        "git checkout sk-fix-branch",
        "postgresql://user@localhost/db",
    ],
)
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert list(find_secrets(text)) == []
    assert redact(text) == text


def test_redaction_keeps_json_valid() -> None:
    import json

    doc = json.dumps({"content": "-----BEGIN PRIVATE KEY-----\nMIIEvQ\nabc"})
    assert json.loads(redact(doc)) == {"content": "[REDACTED:private_key]"}


def test_summary_in_the_papers_terms() -> None:
    good = [simple_session(f"g{i}") for i in range(3)]
    drift = SessionBuilder("d")
    drift.user("I can help you with that.")
    drift.agent("Thanks?")
    drift.end()
    audits = [audit_session(fold_session(b.stored()), LEXICON) for b in [*good, drift]]
    summary = summarize(audits)
    assert summary.sessions == 4
    assert summary.user_turns == 7
    lines = summary.lines()
    assert "role drift: 14.29% of user turns flagged (1 turns in 1 trajectories)" in lines
    assert "75.00% free of role drift and stagnation" in lines
    assert "100.00% of 6 tool calls well-formed" in lines


def test_sentences_split_exactly_as_the_sentence_pattern() -> None:
    """`sentences` finds splits from the punctuation and newlines alone; it must cut exactly
    where `_SENTENCE_SPLIT` (a whitespace run after . ! ?, or a newline run) does."""
    rng = random.Random(7)
    alphabet = ".!? \n\t\r\x0b\x0c\x1c\x85\xa0\u2028ab"
    texts = ["", "One. Two!  Three?\n\nFour", "a.b. c", "x\n.\n", "end.", ".\n \n."]
    texts += [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14))) for _ in range(20000)
    ]
    for text in texts:
        assert sentences(text) == _SENTENCE_SPLIT.split(text), repr(text)
