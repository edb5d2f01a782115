"""Trainer formats rendered from folded sessions, validated against schemas/."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ise_es.errors import ConfigError
from ise_es.projections.formats import Unrepresentable, render, resolve_options
from ise_es.projections.session import fold_session
from tests.projections.builders import SessionBuilder, simple_session
from tests.projections.conftest import assert_alternates, assert_valid

GH_TOKEN = "ghp_" + "a1B2c3D4e5" * 4


def rich_session() -> SessionBuilder:
    """Parallel calls, text beside calls, a failed command, a thinking-only message."""
    b = SessionBuilder("rich")
    b.user("Write notes.txt then show me the folder.")
    b.agent(
        "I'll write the file and list the folder.",
        reasoning="Two independent actions: do them in parallel.",
        calls=[("write", {"path": "notes.txt", "content": "hi"}), ("exec", {"command": "ls"})],
        results=["Successfully wrote 2 bytes to notes.txt", ("notes.txt\n", 0)],
    )
    b.agent("", reasoning="The listing shows the file; nothing else to do.")
    b.agent("Done: notes.txt is there.")
    b.user("Now run the tests.")
    b.agent(
        calls=[("exec", {"command": "pytest -q"})],
        results=[("1 failed", 1)],
    )
    b.agent("One test fails.", reasoning="Report the failure honestly.")
    return b.end()


def secret_session() -> SessionBuilder:
    """A token in the system prompt, the user's message, reasoning, arguments and a result."""
    b = SessionBuilder("secret", system_prompt=f"token {GH_TOKEN}")
    b.user(f"Use {GH_TOKEN} to clone.")
    b.agent(
        reasoning=f"The token is {GH_TOKEN}.",
        calls=[("exec", {"command": f"git clone https://x:{GH_TOKEN}@github.com/a/b"})],
        results=[(f"cloned with {GH_TOKEN}", 0)],
    )
    b.agent("Cloned.")
    return b.end()


def samples(builder: SessionBuilder, **kwargs: Any) -> list[dict[str, Any]]:
    options = resolve_options(**kwargs)
    return render(fold_session(builder.stored()), options)


def test_openai_trajectory_messages(validators: dict[str, Draft202012Validator]) -> None:
    [sample] = samples(simple_session("s1"))
    assert_valid(validators["openai"], sample)
    roles = [m["role"] for m in sample["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"] * 1 + [
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    call = sample["messages"][2]["tool_calls"][0]
    assert call["function"]["arguments"] == json.dumps({"command": "ls /tmp/work0"})
    assert sample["messages"][3] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": "a.log\nb.log\n",
    }
    assert [t["function"]["name"] for t in sample["tools"]] == ["exec", "write", "read"]


def test_closing_turn_is_not_a_user_message() -> None:
    [sample] = samples(simple_session("s1"))
    texts = [m["content"] for m in sample["messages"] if m["role"] == "user"]
    assert "Thanks, that is all." not in texts
    assert len(texts) == 2


@pytest.mark.parametrize(
    ("mode", "field", "inline"),
    [("field", True, False), ("think", False, True), ("drop", False, False)],
)
def test_reasoning_modes(mode: str, field: bool, inline: bool) -> None:
    [sample] = samples(simple_session("s1"), reasoning=mode)
    first = sample["messages"][2]
    assert ("reasoning_content" in first) is field
    assert first["content"].startswith("<think>\n") is inline
    if inline:
        assert first["content"] == (
            "<think>\nI should list the folder for part 1 first.\n</think>\n\nChecking."
        )
    assert all("think>" not in m["content"] for m in sample["messages"]) is not inline


def test_per_turn_keeps_reasoning_only_on_the_target_turn(
    validators: dict[str, Draft202012Validator],
) -> None:
    out = samples(simple_session("s1", turns=3), samples="per-turn")
    assert len(out) == 3
    for k, sample in enumerate(out):
        assert_valid(validators["openai"], sample)
        users = [i for i, m in enumerate(sample["messages"]) if m["role"] == "user"]
        assert len(users) == k + 1
        last_user = users[-1]
        for i, m in enumerate(sample["messages"]):
            if m["role"] != "assistant":
                continue
            target = i > last_user
            assert ("reasoning_content" in m) is target
            assert ("weight" in m) is not target
        assert sample["messages"][-1]["role"] == "assistant"


def test_sharegpt_rules(validators: dict[str, Draft202012Validator]) -> None:
    [sample] = samples(rich_session(), format="sharegpt")
    assert_valid(validators["sharegpt"], sample)
    conv = sample["conversations"]
    assert_alternates(conv)
    assert [t["from"] for t in conv] == [
        "human",
        "function_call",
        "observation",
        "gpt",
        "human",
        "function_call",
        "observation",
        "gpt",
    ]
    # S1 + S3: both calls in one turn, the accompanying text kept on the first call object
    thought, _, body = conv[1]["value"].rpartition("</think>\n\n")
    assert "parallel" in thought
    calls = json.loads(body)
    assert [c["name"] for c in calls] == ["write", "exec"]
    assert calls[0]["content"] == "I'll write the file and list the folder."
    assert calls[1]["arguments"] == {"command": "ls"}
    # S2: parallel results merged into one observation, in call order
    assert json.loads(conv[2]["value"]) == [
        "Successfully wrote 2 bytes to notes.txt",
        "notes.txt\n",
    ]
    # S4: the thinking-only message merges into the answer that follows it
    assert conv[3]["value"] == (
        "<think>\nThe listing shows the file; nothing else to do.\n</think>\n\n"
        "Done: notes.txt is there."
    )
    assert conv[6]["value"] == "1 failed"
    assert json.loads(sample["tools"])[0]["name"] == "exec"


def test_sharegpt_drops_unanswered_trailing_user_turn() -> None:
    b = simple_session("s1", turns=1)
    b.events.pop()  # reopen: SessionEnded
    b.events.pop()  # closing turn
    b.user("One more thing?")
    b.end("turn_cap")
    [sample] = (
        samples(b, format="sharegpt", status="any") if False else samples(b, format="sharegpt")
    )
    assert sample["conversations"][-1]["from"] == "gpt"
    assert all("One more thing" not in t["value"] for t in sample["conversations"])


def test_sharegpt_refuses_what_cannot_alternate() -> None:
    b = SessionBuilder("orphan")
    b.user("Run it.")
    b.agent(calls=[("exec", {"command": "true"})], results=[None])
    b.agent("Done?")
    b.end()
    with pytest.raises(Unrepresentable):
        render(fold_session(b.stored()), resolve_options(format="sharegpt"))


def test_option_combinations_are_checked() -> None:
    with pytest.raises(ConfigError, match="sharegpt has no reasoning field"):
        resolve_options(format="sharegpt", reasoning="field")
    with pytest.raises(ConfigError, match="middle format holds whole trajectories"):
        resolve_options(format="middle", samples="per-turn")
    with pytest.raises(ConfigError, match="unknown format"):
        resolve_options(format="alpaca")
    assert resolve_options(format="sharegpt").reasoning == "think"
    assert resolve_options().reasoning == "field"


def test_middle_is_lossless_where_the_format_allows(
    validators: dict[str, Draft202012Validator],
) -> None:
    [sample] = samples(rich_session(), format="middle")
    assert_valid(validators["middle"], sample)
    tools = [m for m in sample["messages"] if m["role"] == "tool"]
    assert [t["success"] for t in tools] == [True, True, False]  # exit code 1 is a failure
    assert sample["total_steps"] == 3
    assert sample["enable_thinking"] is True
    assert sample["final_output"] == "One test fails."
    thinking_only = [m for m in sample["messages"] if m["role"] == "assistant" and not m["content"]]
    assert thinking_only and "reasoning_content" in thinking_only[0]
    call = sample["messages"][2]["tool_calls"][0]
    assert call["function"]["arguments"] == {"path": "notes.txt", "content": "hi"}
    results = sample["metadata"]["tool_results"]
    assert [r["exit_code"] for r in results] == [None, 0, 1]
    assert results[0]["files_changed"] == 1
    assert sample["metadata"]["model_calls"][0]["prompt_tokens"] == 1000
    assert sample["source_intents"][0]["natural_language_intent"].startswith("Tidy")


def test_malformed_arguments_stay_raw_in_every_format(
    validators: dict[str, Draft202012Validator],
) -> None:
    b = SessionBuilder("bad")
    b.user("Go.")
    b.agent(calls=[("exec", '{"command": "ls"')], results=["error: bad arguments"])
    b.agent("Retried.")
    b.end()
    for fmt in ("openai", "sharegpt", "middle"):
        [sample] = samples(b, format=fmt)
        assert_valid(validators[fmt], sample)
    [middle] = samples(b, format="middle")
    assert middle["messages"][2]["tool_calls"][0]["function"]["arguments"] == '{"command": "ls"'


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "middle"])
def test_redaction_reaches_every_string(
    fmt: str, validators: dict[str, Draft202012Validator]
) -> None:
    b = secret_session()
    plain = json.dumps(samples(b, format=fmt))
    assert GH_TOKEN in plain
    [sample] = samples(b, format=fmt, redact=True)
    assert_valid(validators[fmt], sample)
    text = json.dumps(sample)
    assert GH_TOKEN not in text
    assert "[REDACTED:github_token]" in text
