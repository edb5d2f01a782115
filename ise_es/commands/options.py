"""Click options shared by several commands.

`role_options(role)` is the one list of `--ROLE-*` flags; every command that reaches a model
(`record`, `intents generate`, `intents personas`) applies it and passes the collected values to
`ise_es.llm.roles.role_config_from_options`, so a flag means the same thing in each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ise_es.llm.roles import DEFAULT_BASE_URL, NO_KEY, default_key_env

__all__ = ["apply", "role_options"]

F = TypeVar("F", bound=Callable[..., Any])


def role_options(role: str) -> list[Callable[[F], F]]:
    """`--ROLE-model`, `--ROLE-base-url`, `--ROLE-api-key-env`, sampling and transport flags."""
    return [
        click.option(
            f"--{role}-model",
            help=f"Model name of the {role} role (switches it to the OpenAI backend).",
        ),
        click.option(
            f"--{role}-base-url",
            default=DEFAULT_BASE_URL,
            show_default=True,
            help=f"OpenAI-compatible endpoint of the {role} role.",
        ),
        click.option(
            f"--{role}-api-key-env",
            default=default_key_env(role),
            show_default=True,
            help=f"Name of the environment variable holding the API key; `{NO_KEY}` for a "
            "server that wants no key. The default variable may stay unset (no key is sent); "
            "a variable you name must be set.",
        ),
        click.option(f"--{role}-temperature", type=float, default=None),
        click.option(f"--{role}-max-tokens", type=int, default=None),
        click.option(f"--{role}-timeout", type=float, default=120.0, show_default=True),
        click.option(f"--{role}-retries", type=int, default=4, show_default=True),
    ]


def apply(options: list[Callable[[F], F]]) -> Callable[[F], F]:
    """Apply a list of click decorators in the order they are listed (first = topmost)."""

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate
