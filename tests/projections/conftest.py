"""Fixtures of the projection tests: JSON Schema validators for the export formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def load_validator(fmt: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"sft-{fmt}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture(scope="session")
def validators() -> dict[str, Draft202012Validator]:
    return {fmt: load_validator(fmt) for fmt in ("openai", "sharegpt", "middle")}


def assert_valid(validator: Draft202012Validator, sample: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(sample), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def assert_alternates(conversations: list[dict[str, str]]) -> None:
    """LLaMA-Factory's rule: human/observation at even indexes, gpt/function_call at odd."""
    for i, turn in enumerate(conversations):
        allowed = ("human", "observation") if i % 2 == 0 else ("gpt", "function_call")
        assert turn["from"] in allowed, f"turn {i} is {turn['from']}: {conversations}"
    assert len(conversations) % 2 == 0
