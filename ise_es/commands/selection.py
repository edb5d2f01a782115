"""The selection and format options every training export shares (`project sft-jsonl`,
`project hf-dataset`): one list of click options and one function turning their values into
`ExportOptions`, so a flag means the same thing in each command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ise_es.commands.options import SESSION_STATUSES

if TYPE_CHECKING:
    from ise_es.projections.export import ExportOptions

__all__ = ["SELECTION_KEYS", "export_options", "selection_options"]

F = TypeVar("F", bound=Callable[..., Any])

SELECTION_KEYS = (
    "fmt",
    "reasoning",
    "samples",
    "status",
    "clean",
    "lexicon",
    "min_user_turns",
    "split_spec",
    "seed",
    "redact_secrets",
    "malformed",
    "middle_shape",
    "success_rule",
)
"""The parameter names `selection_options` adds to a command."""


def selection_options() -> list[Callable[[F], F]]:
    """--format, --reasoning, --samples, --status, --clean, --lexicon, --min-user-turns,
    --split, --seed, --redact-secrets, --malformed, --middle-shape, --success."""
    return [*_selection_filters(), *_rendering_options()]


def _selection_filters() -> list[Callable[[F], F]]:
    """The format, and which sessions go into which split."""
    return [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["openai", "sharegpt", "middle"]),
            default="openai",
            show_default=True,
            help="openai (OpenAI/TRL messages+tools), sharegpt (LLaMA-Factory), middle (ISE "
            "reference).",
        ),
        click.option(
            "--reasoning",
            type=click.Choice(["field", "think", "drop"]),
            default=None,
            help="reasoning_content field, inline <think> blocks, or removed "
            "[default: field; think for sharegpt].",
        ),
        click.option(
            "--samples",
            type=click.Choice(["trajectory", "per-turn"]),
            default="trajectory",
            show_default=True,
            help="One sample per trajectory, or one per user turn (thinking only on the target "
            "turn).",
        ),
        click.option(
            "--status",
            type=click.Choice([*SESSION_STATUSES, "any"]),
            default="completed",
            show_default=True,
            help="Sessions to keep by how they ended (completion gating).",
        ),
        click.option("--clean", is_flag=True, help="Drop trajectories the audits flag."),
        click.option(
            "--lexicon", type=click.Path(exists=True, dir_okay=False), help="Role-drift lexicon."
        ),
        click.option("--min-user-turns", type=click.IntRange(min=0), default=0, show_default=True),
        click.option("--split", "split_spec", help="Shares per split, e.g. train=0.95,val=0.05."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split."),
    ]


def _rendering_options() -> list[Callable[[F], F]]:
    """How what was selected is written."""
    return [
        click.option(
            "--redact-secrets", is_flag=True, help="Replace tokens, keys and URL passwords."
        ),
        click.option(
            "--malformed",
            type=click.Choice(["mask", "drop", "keep"]),
            default="mask",
            show_default=True,
            help="Trajectories with malformed tool-call arguments: never train on the broken "
            "message (openai weight 0; sharegpt drops the call), drop the trajectory, or keep "
            "it as is.",
        ),
        click.option(
            "--middle-shape",
            type=click.Choice(["current", "legacy"]),
            default="current",
            show_default=True,
            help="middle: the reference's current keys, or its legacy shape (intent, string "
            "arguments).",
        ),
        click.option(
            "--success",
            "success_rule",
            type=click.Choice(["strict", "reference"]),
            default="strict",
            show_default=True,
            help="middle: success from every failure signal, or the reference's `not isError`.",
        ),
    ]


def export_options(values: dict[str, Any]) -> ExportOptions:
    """`ExportOptions` from the values of `selection_options` (other keys are ignored).

    Raises:
        ConfigError: a combination the format cannot express, or a bad split.
    """
    from ise_es.projections.audit import load_lexicon
    from ise_es.projections.export import ExportOptions, parse_split
    from ise_es.projections.formats import resolve_options

    split_spec = values.get("split_spec")
    lexicon = values.get("lexicon")
    return ExportOptions(
        render=resolve_options(
            values.get("fmt", "openai"),
            values.get("reasoning"),
            values.get("samples", "trajectory"),
            redact=values.get("redact_secrets", False),
            malformed=values.get("malformed", "mask"),
            middle_shape=values.get("middle_shape", "current"),
            success=values.get("success_rule", "strict"),
        ),
        status=values.get("status", "completed"),
        clean=values.get("clean", False),
        min_user_turns=values.get("min_user_turns", 0),
        split=parse_split(split_spec) if split_spec else None,
        seed=values.get("seed", 0),
        lexicon=load_lexicon(lexicon) if lexicon else None,
    )
