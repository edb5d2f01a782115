"""Separating inline <think> reasoning from the answer."""

from __future__ import annotations

import pytest

from ise_es.llm import split_inline_reasoning


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("plain answer", ("plain answer", None)),
        ("<think>\nplan it\n</think>\n\nanswer", ("answer", "plan it")),
        ("plan it</think>answer", ("answer", "plan it")),
        ("<think>first</think>a<think>second</think>b", ("ab", "first\nsecond")),
        ("answer so far <think>cut off by max_tokens", ("answer so far", "cut off by max_tokens")),
        ("<think></think>answer", ("answer", None)),
    ],
    ids=["none", "block", "closing-only", "two-blocks", "unclosed", "empty"],
)
def test_split_inline_reasoning(content: str, expected: tuple[str, str | None]) -> None:
    assert split_inline_reasoning(content) == expected
