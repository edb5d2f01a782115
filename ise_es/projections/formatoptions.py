"""The options of the trainer formats (`formats.py`) and the errors of rendering: one module
that the format renderers share, so that none imports another."""

from __future__ import annotations

from typing import Literal

import msgspec

from ise_es.errors import ConfigError

__all__ = [
    "FORMATS",
    "LEGACY_KEYS",
    "Excluded",
    "Format",
    "Malformed",
    "MiddleShape",
    "Reasoning",
    "RenderOptions",
    "Samples",
    "Success",
    "Unrepresentable",
    "resolve_options",
    "think",
]

Format = Literal["openai", "sharegpt", "middle"]
Reasoning = Literal["field", "think", "drop"]
Samples = Literal["trajectory", "per-turn"]
Malformed = Literal["mask", "drop", "keep"]
MiddleShape = Literal["current", "legacy"]
Success = Literal["strict", "reference"]
FORMATS: tuple[Format, ...] = ("openai", "sharegpt", "middle")
LEGACY_KEYS = (
    "status",
    "session_id",
    "intent",
    "total_steps",
    "enable_thinking",
    "messages",
    "tools",
    "skills",
    "final_output",
    "intent_id",
    "metadata",
)
"""The legacy middle shape's keys, in the order its files have them."""


class Unrepresentable(Exception):
    """The session cannot be expressed in the chosen format without losing or inventing
    content; the exporter skips and counts it."""


class Excluded(Unrepresentable):
    """The options exclude the session (`malformed="drop"`); `reason` is how it is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RenderOptions(msgspec.Struct, frozen=True, kw_only=True):
    format: Format = "openai"
    reasoning: Reasoning = "field"
    samples: Samples = "trajectory"
    redact: bool = False
    malformed: Malformed = "mask"
    middle_shape: MiddleShape = "current"
    success: Success = "strict"


def resolve_options(
    format: str = "openai",
    reasoning: str | None = None,
    samples: str = "trajectory",
    *,
    redact: bool = False,
    malformed: str = "mask",
    middle_shape: str = "current",
    success: str = "strict",
) -> RenderOptions:
    """Check a combination of options and fill the format's default reasoning mode.

    Raises:
        ConfigError: an unknown value, or a combination the format cannot express.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if reasoning is None:
        reasoning = "think" if format == "sharegpt" else "field"
    if reasoning not in ("field", "think", "drop"):
        raise ConfigError(f"unknown reasoning mode {reasoning!r}: use field, think or drop")
    if samples not in ("trajectory", "per-turn"):
        raise ConfigError(f"unknown samples mode {samples!r}: use trajectory or per-turn")
    if format == "sharegpt" and reasoning == "field":
        raise ConfigError(
            "sharegpt has no reasoning field: use --reasoning think (inline <think> blocks) "
            "or --reasoning drop"
        )
    if malformed not in ("mask", "drop", "keep"):
        raise ConfigError(f"unknown --malformed {malformed!r}: use mask, drop or keep")
    if middle_shape not in ("current", "legacy"):
        raise ConfigError(f"unknown middle shape {middle_shape!r}: use current or legacy")
    if success not in ("strict", "reference"):
        raise ConfigError(f"unknown success rule {success!r}: use strict or reference")
    if format != "middle" and (middle_shape != "current" or success != "strict"):
        raise ConfigError(
            "--middle-shape and --success shape the middle format only: add --format middle"
        )
    if format == "middle" and samples == "per-turn":
        raise ConfigError(
            "the middle format holds whole trajectories: use --samples trajectory, or "
            "--format openai/sharegpt for per-turn samples"
        )
    return RenderOptions(
        format=format,
        reasoning=reasoning,  # type: ignore[arg-type]
        samples=samples,  # type: ignore[arg-type]
        redact=redact,
        malformed=malformed,  # type: ignore[arg-type]
        middle_shape=middle_shape,  # type: ignore[arg-type]
        success=success,  # type: ignore[arg-type]
    )


def think(reasoning: str, text: str) -> str:
    """Reasoning inline, as Qwen3 chat templates render it before the text."""
    return f"<think>\n{reasoning.strip(chr(10))}\n</think>\n\n{text}"
