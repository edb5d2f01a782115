"""Prompt files shipped with ise-es (ise_es/simulate/prompts/*.md) and how they are loaded."""

from __future__ import annotations

import string
from functools import cache
from importlib import resources

from ise_es.errors import ConfigError

__all__ = [
    "AGENT_SYSTEM_PROMPT",
    "default_agent_system_prompt",
    "load_prompt",
    "render_prompt",
]

AGENT_SYSTEM_PROMPT = "agent_system.md"


@cache
def load_prompt(name: str) -> str:
    """A shipped prompt file's text, without its trailing newline.

    Raises:
        ConfigError: no prompt of that name ships with ise-es.
    """
    resource = resources.files("ise_es.simulate").joinpath("prompts", name)
    try:
        return resource.read_text(encoding="utf-8").rstrip("\n")
    except FileNotFoundError as e:
        raise ConfigError(f"no shipped prompt named {name!r}") from e


def render_prompt(name: str, **values: object) -> str:
    """Fill a shipped prompt's ``$placeholders`` (string.Template: JSON braces stay literal).

    Raises:
        ConfigError: the prompt needs a value that was not given (a bug, named here).
    """
    try:
        return string.Template(load_prompt(name)).substitute(
            {key: str(value) for key, value in values.items()}
        )
    except KeyError as e:
        raise ConfigError(f"prompt {name!r} needs a value for ${e.args[0]}") from e


def default_agent_system_prompt() -> str:
    """The agent's default system prompt: a shell agent in /tmp/workspace with the OpenClaw
    tool set."""
    return load_prompt(AGENT_SYSTEM_PROMPT)
