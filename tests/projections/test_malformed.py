"""Training-safe exports: a trajectory whose agent once emitted malformed tool-call arguments,
rendered through a Qwen3-style chat template by the real `transformers` library (the path
TRL's SFT takes), never teaches the broken call and keeps every result and the final reasoning.

The tokenizer is built offline from a tiny `tokenizers` vocabulary: nothing comes from a hub.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from cli import main
from ise_es.events import ToolCallFinished, ToolCallStarted
from ise_es.llm.base import RoleConfig
from ise_es.llm.openai_client import OpenAIChatClient
from ise_es.projections.conversation import malformed_arguments
from ise_es.projections.formats import Excluded, render, resolve_options
from ise_es.projections.session import SessionView, fold_session
from ise_es.simulate.session import SessionPlan, record_session
from ise_es.store.sql import SqlEventStore, open_store
from tests.projections.builders import SessionBuilder, append_visible
from tests.support.fixtures import FIELD_REASONING_MODEL, INLINE_REASONING_MODEL, openai_server
from tests.support.openai_server import Reply, ScriptedOpenAIServer

__all__ = ["openai_server"]  # the fixture, imported for this module

# ChatML with Qwen3's conventions, in our words: tools in the system turn, <tool_call> blocks
# whose arguments are printed as given when a string (as Qwen3's template does), results as
# <tool_response> inside a user turn, and reasoning as <think> only after the last user query.
QWEN3_STYLE = """
{%- if tools %}<|im_start|>system
{%- if messages[0].role == 'system' %}
{{ messages[0].content }}
{%- endif %}
# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- set ns = namespace(last_query=-1) %}
{%- for m in messages %}{% if m.role == 'user' %}{% set ns.last_query = loop.index0 %}{% endif %}
{%- endfor %}
{%- for m in messages %}
{%- if m.role == 'user' %}<|im_start|>user
{{ m.content }}<|im_end|>
{% elif m.role == 'assistant' %}<|im_start|>assistant
{% if m.reasoning_content and loop.index0 > ns.last_query %}<think>
{{ m.reasoning_content.strip() }}
</think>

{% endif %}{{ m.content }}
{%- for call in m.tool_calls or [] %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {% if call.function.arguments is string %}
{{- call.function.arguments }}{% else %}{{ call.function.arguments | tojson }}{% endif %}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif m.role == 'tool' %}<|im_start|>user
<tool_response>
{{ m.content }}
</tool_response><|im_end|>
{% endif %}
{%- endfor %}
"""

BROKEN = '{"command": "python -m pytest -q"'
ERROR = (
    "Invalid arguments for exec: arguments are not valid JSON "
    "(Expecting ',' delimiter at line 1 column 34)"
)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "<|im_start|>": 1, "<|im_end|>": 2}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", eos_token="<|im_end|>")


def recovering_session(session_id: str = "malformed1") -> SessionBuilder:
    """Fail, recover on the next step, then a second turn; the broken call got the error result
    the tool runner gives."""
    b = SessionBuilder(session_id)
    b.user("The tests fail. Fix them.")
    b.agent(
        "Running the tests.",
        reasoning="Run pytest first.",
        calls=[("exec", BROKEN)],
        results=[None],
    )
    call_id = f"call_{session_id}_1"
    b.events += [
        ToolCallStarted(call_id=call_id, tool="exec", arguments=BROKEN, turn=1, step=0),
        ToolCallFinished(
            call_id=call_id,
            tool="exec",
            result_text=ERROR,
            is_error=True,
            error=ERROR,
            details={"status": "error", "tool": "exec", "error": ERROR},
        ),
    ]
    b.agent(
        reasoning="My JSON was cut off; again, complete.",
        calls=[("exec", {"command": "python -m pytest -q"})],
        results=[("1 failed: test_add\n\n(Command exited with code 1)", 1)],
    )
    b.agent(
        calls=[("write", {"path": "src/add.py", "content": "def add(a, b):\n    return a + b\n"})]
    )
    b.agent("Fixed add(); the tests pass now.")
    b.user("Also show me the diff.")
    b.agent(
        reasoning="git diff shows the change.",
        calls=[("exec", {"command": "git diff"})],
        results=[("-    return a - b\n+    return a + b", 0)],
    )
    b.agent("The fix swaps - for + in add().", reasoning="Summarise the diff in one line.")
    return b.end()


def view_of(b: SessionBuilder) -> SessionView:
    return fold_session(b.stored(), b.stream_id)


def tool_call_blocks(text: str) -> list[str]:
    return re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text, flags=re.S)


def trained_blocks(sample: dict[str, Any], rendered: str) -> list[tuple[bool, str]]:
    """(trained on?, rendered block) for every tool call, in order."""
    flags = [
        m.get("weight", 1) != 0
        for m in sample["messages"]
        if m["role"] == "assistant"
        for _ in m.get("tool_calls", [])
    ]
    blocks = tool_call_blocks(rendered)
    assert len(blocks) == len(flags)
    return list(zip(flags, blocks, strict=True))


def is_call_json(block: str) -> bool:
    try:
        parsed = json.loads(block)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("arguments"), dict)


def apply(tokenizer: PreTrainedTokenizerFast, messages: list[dict[str, Any]], tools: Any) -> str:
    text = tokenizer.apply_chat_template(
        messages, tools=tools, chat_template=QWEN3_STYLE, tokenize=False
    )
    assert isinstance(text, str)
    return text


def test_malformed_arguments_are_recognised() -> None:
    assert malformed_arguments(BROKEN)
    assert malformed_arguments("[1, 2]")
    assert not malformed_arguments('{"command": "ls"}')
    assert not malformed_arguments("")  # the runner reads an empty string as {}


@pytest.mark.parametrize("samples", ["trajectory", "per-turn"])
def test_openai_mask_trains_only_valid_calls(
    tokenizer: PreTrainedTokenizerFast, samples: str
) -> None:
    view = view_of(recovering_session())
    for sample in render(view, resolve_options("openai", samples=samples)):
        rendered = apply(tokenizer, sample["messages"], sample["tools"])
        pairs = trained_blocks(sample, rendered)
        assert all(is_call_json(block) for trained, block in pairs if trained), rendered
        # every tool result is in the rendered text, and the reasoning after the last user turn
        for m in sample["messages"]:
            if m["role"] == "tool":
                assert f"<tool_response>\n{m['content']}\n</tool_response>" in rendered
        last_user = max(i for i, m in enumerate(sample["messages"]) if m["role"] == "user")
        after = [m for m in sample["messages"][last_user:] if m.get("reasoning_content")]
        assert after
        for m in after:
            assert f"<think>\n{m['reasoning_content'].strip()}\n</think>" in rendered
    [whole] = render(view, resolve_options("openai"))
    weights = [m.get("weight") for m in whole["messages"] if m["role"] == "assistant"]
    assert weights == [0, None, None, None, None, None]  # only the broken message is masked
    assert ERROR in apply(tokenizer, whole["messages"], whole["tools"])  # the recovery's context


def test_keep_would_train_the_broken_call(tokenizer: PreTrainedTokenizerFast) -> None:
    [sample] = render(view_of(recovering_session()), resolve_options("openai", malformed="keep"))
    pairs = trained_blocks(sample, apply(tokenizer, sample["messages"], sample["tools"]))
    assert [block for trained, block in pairs if trained and not is_call_json(block)] == [
        f'{{"name": "exec", "arguments": {BROKEN}}}'
    ]


def sharegpt_messages(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """LLaMA-Factory's sharegpt turns as chat messages, the way its template would see them."""
    out: list[dict[str, Any]] = [{"role": "system", "content": sample["system"]}]
    for turn in sample["conversations"]:
        if turn["from"] == "human":
            out.append({"role": "user", "content": turn["value"]})
        elif turn["from"] == "gpt":
            out.append({"role": "assistant", "content": turn["value"]})
        elif turn["from"] == "function_call":
            value = turn["value"]
            if value.startswith("<think>"):
                value = value.split("</think>\n\n", 1)[1]
            calls = json.loads(value)
            calls = calls if isinstance(calls, list) else [calls]
            out.append(
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"function": {"name": c["name"], "arguments": c["arguments"]}}
                        for c in calls
                    ],
                }
            )
        else:
            out.append({"role": "tool", "content": turn["value"]})
    return out


def test_sharegpt_mask_leaves_out_the_broken_call(tokenizer: PreTrainedTokenizerFast) -> None:
    view = view_of(recovering_session())
    [sample] = render(view, resolve_options("sharegpt"))
    froms = [t["from"] for t in sample["conversations"]]
    assert froms[:3] == ["human", "function_call", "observation"]
    assert ERROR not in json.dumps(sample)
    rendered = apply(tokenizer, sharegpt_messages(sample), json.loads(sample["tools"]))
    blocks = tool_call_blocks(rendered)
    assert len(blocks) == 3 and all(is_call_json(b) for b in blocks)
    [kept] = render(view, resolve_options("sharegpt", malformed="keep"))
    assert len(kept["conversations"]) == len(sample["conversations"]) + 2


def test_middle_lists_malformed_calls_and_drop_excludes() -> None:
    view = view_of(recovering_session())
    [middle] = render(view, resolve_options("middle"))
    assert middle["metadata"]["malformed_tool_calls"] == [
        {"message_index": 2, "tool_call_id": "call_malformed1_1"}
    ]
    with pytest.raises(Excluded, match="malformed tool-call arguments"):
        render(view, resolve_options("openai", malformed="drop"))


def test_export_counts_dropped_trajectories(db_url: str, tmp_path: Path) -> None:
    with open_store(db_url) as store:
        for b in (
            recovering_session("bad1"),
            SessionBuilder("good1").user("hi").agent("hello").end(),
        ):
            append_visible(store, b.stream_id, b.events, 0)
    out = tmp_path / "sft.jsonl"
    runner = CliRunner()
    result = runner.invoke(
        main, ["project", "sft-jsonl", "-o", str(out), "--malformed", "drop", "--db", db_url]
    )
    assert result.exit_code == 0, result.output
    assert "1 of 2 sessions exported; skipped: 1 malformed tool-call arguments" in result.output
    result = runner.invoke(main, ["project", "sft-jsonl", "-o", str(out), "--db", db_url])
    assert "2 of 2 sessions exported" in result.output


def test_a_session_recorded_against_a_vllm_like_server(
    store: SqlEventStore, openai_server: ScriptedOpenAIServer, tokenizer: PreTrainedTokenizerFast
) -> None:
    """Recorded for real (agent loop, tool runner, local sandbox): the agent's first call is
    cut off, the runner answers with an error, the agent recovers on the next step."""
    openai_server.script(
        FIELD_REASONING_MODEL,
        Reply.user_turn("Create notes.txt containing hello."),
        Reply.user_turn("Thanks, done.", completed=True),
    )
    openai_server.script(
        INLINE_REASONING_MODEL,
        Reply.calls(("write", '{"path": "notes.txt", "content": "hello'), reasoning="Write it."),
        Reply.calls(
            ("write", '{"path": "notes.txt", "content": "hello\\n"}'),
            reasoning="The arguments were cut off; again.",
        ),
        Reply(content="Created notes.txt.", reasoning="Done, say so."),
    )

    def role(name: str, model: str) -> OpenAIChatClient:
        config = RoleConfig(role=name, model=model, base_url=openai_server.base_url)  # type: ignore[arg-type]
        return OpenAIChatClient(config, environ={})

    plan = SessionPlan(
        intent_id="intent_malformed",
        intent="Create a notes file.",
        agent=role("agent", INLINE_REASONING_MODEL),
        user=role("user", FIELD_REASONING_MODEL),
    )
    assert record_session(store, plan, session_id="vllm1").status == "completed"
    view = fold_session(store.read_stream("session-vllm1"), "session-vllm1")
    [broken] = [r for r in view.results() if r.is_error]
    assert "not valid JSON" in broken.result_text
    [sample] = render(view, resolve_options("openai"))
    rendered = apply(tokenizer, sample["messages"], sample["tools"])
    pairs = trained_blocks(sample, rendered)
    assert [trained for trained, _ in pairs] == [False, True]
    assert all(is_call_json(block) for trained, block in pairs if trained)
    assert broken.result_text in rendered
    assert "<think>\nDone, say so.\n</think>" in rendered
