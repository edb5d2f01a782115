"""Click options shared by several commands.

`role_options(role)` is the one list of `--ROLE-*` flags; every command that reaches a model
(`record`, `intents generate`, `intents personas`) applies it and passes the collected values to
`ise_es.llm.roles.role_config_from_options` (the one RoleConfig builder), so a flag means the
same thing in each. `workers_option`, `sandbox_option` and `templates_dir_option` are the one
declaration of those flags; each command says only its default and help.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ise_es.llm.roles import DEFAULT_BASE_URL, NO_KEY, default_key_env

if TYPE_CHECKING:
    from ise_es.web.settings import WebSettings

__all__ = [
    "SANDBOX_BACKENDS",
    "SESSION_STATUSES",
    "WEB_OPTION_NAMES",
    "apply",
    "role_options",
    "sandbox_option",
    "split_workers_option",
    "templates_dir_option",
    "web_options",
    "web_settings",
    "workers_option",
]

F = TypeVar("F", bound=Callable[..., Any])

SESSION_STATUSES = ("completed", "turn_cap", "stalled", "error", "interrupted")
"""How a session can end (`SessionEnded.status`), in the order the options list them."""

SANDBOX_BACKENDS = ("local", "docker")
"""The backend registry's names (`ise_es.sandbox.BACKENDS`), repeated so that `--help` does not
load the sandbox package (tests/test_startup.py); tests/test_help.py keeps every `--sandbox`
option's choices equal to the registry."""


def sandbox_option(name: str, *, default: str | None, help: str | None = None) -> Callable[[F], F]:
    """`--sandbox` (one of the registered backends), passed to the command as `name`."""
    return click.option(
        "--sandbox",
        name,
        type=click.Choice(SANDBOX_BACKENDS),
        default=default,
        show_default=default is not None,
        help=help,
    )


def workers_option(
    *, default: int | None, maximum: int, help: str | None = None
) -> Callable[[F], F]:
    """`--workers N`: how many things (sessions, renders, processes) a command runs at once
    (a default of None: the command decides, and its help says how)."""
    return click.option(
        "--workers",
        type=click.IntRange(1, maximum),
        default=default,
        show_default=default is not None,
        help=help,
    )


def split_workers_option() -> Callable[[F], F]:
    """`--workers N` of the projections that read the whole log (parts.py splits the read)."""
    return workers_option(
        default=None,
        maximum=64,
        help="Processes the read of the log is split among, by stream (default: one per core, "
        "up to 4, when 200,000 events or more are to be read; 1: this process alone).",
    )


def templates_dir_option(
    help: str = "Where template names are looked up first (default: ./fixtures/templates); the "
    "shipped templates come after it.",
) -> Callable[[F], F]:
    """`--templates-dir DIR`, a Path or None."""
    return click.option(
        "--templates-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help=help,
    )


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


WEB_OPTION_NAMES = (
    "web",
    "web_allow",
    "web_deny",
    "web_port",
    "web_search",
    "web_search_url",
    "web_search_key_env",
    "web_fetch_max_bytes",
    "web_fetch_timeout",
    "web_session_max_requests",
    "web_session_max_bytes",
    "web_session_timeout",
)


def web_options() -> list[Callable[[F], F]]:
    """`--web live|fixture|off` and the `--web-*` egress and search options (docs/threat-model.md
    explains the policy). The defaults repeat `ise_es.web.WebLimits` so `--help` stays fast; a
    test keeps them equal."""
    return [*_web_policy_options(), *_web_limit_options()]


def _web_policy_options() -> list[Callable[[F], F]]:
    """What the agent's web is and where it may reach."""
    return [
        click.option(
            "--web",
            type=click.Choice(["fixture", "live", "off"]),
            default="fixture",
            show_default=True,
            help="The agent's web: the offline fixture site, the real web through the egress "
            "policy, or none (no web tools).",
        ),
        click.option(
            "--web-allow",
            multiple=True,
            metavar="ENTRY",
            help="Let --web live reach what the policy refuses by default: an address or "
            "network (10.1.0.0/16), a host (docs.corp.example, *.corp.example), optionally "
            ":PORT. Repeat for more.",
        ),
        click.option(
            "--web-deny",
            multiple=True,
            metavar="ENTRY",
            help="Never reach this address, network or host (same forms as --web-allow); wins "
            "over --web-allow. Repeat for more.",
        ),
        click.option(
            "--web-port",
            type=click.IntRange(1, 65535),
            multiple=True,
            help="Ports --web live may reach (default: 80 and 443). Repeat for more.",
        ),
        click.option(
            "--web-search",
            type=click.Choice(["none", "searxng", "serper", "brave"]),
            default="none",
            show_default=True,
            help="The search provider behind web_search in --web live.",
        ),
        click.option(
            "--web-search-url",
            default=None,
            help="The provider's endpoint (required for searxng, e.g. "
            "http://127.0.0.1:8888/search).",
        ),
        click.option(
            "--web-search-key-env",
            default=None,
            help="Environment variable holding the provider's API key (default: "
            "SERPER_API_KEY, BRAVE_SEARCH_API_KEY).",
        ),
    ]


def _web_limit_options() -> list[Callable[[F], F]]:
    """How much of the web a fetch and a session may take."""
    return [
        click.option(
            "--web-fetch-max-bytes",
            type=click.IntRange(1),
            default=4 << 20,
            show_default=True,
            help="Body bytes kept per fetch (more is truncated).",
        ),
        click.option(
            "--web-fetch-timeout",
            type=click.FloatRange(0, min_open=True),
            default=30.0,
            show_default=True,
            help="Seconds per fetch.",
        ),
        click.option(
            "--web-session-max-requests",
            type=click.IntRange(1),
            default=200,
            show_default=True,
            help="Web requests per session.",
        ),
        click.option(
            "--web-session-max-bytes",
            type=click.IntRange(1),
            default=64 << 20,
            show_default=True,
            help="Body bytes per session.",
        ),
        click.option(
            "--web-session-timeout",
            type=click.FloatRange(0, min_open=True),
            default=600.0,
            show_default=True,
            help="Seconds spent on the web per session.",
        ),
    ]


def web_settings(
    options: MutableMapping[str, Any], *, db_url: str | None, environ: Mapping[str, str]
) -> WebSettings:
    """Take the `web_options()` values out of a command's keyword arguments and build the
    validated WebSettings, with the search key read from `environ`.

    Raises:
        ConfigError: a malformed entry, an unknown provider, a missing endpoint or key.
    """
    from ise_es.web import WebLimits, WebSettings

    values = {name: options.pop(name) for name in WEB_OPTION_NAMES if name in options}
    search = values.get("web_search")
    settings = WebSettings(
        mode=values.get("web", "fixture"),
        allow=tuple(values.get("web_allow") or ()),
        deny=tuple(values.get("web_deny") or ()),
        ports=tuple(values.get("web_port") or ()) or (80, 443),
        search=None if search in (None, "none") else search,
        search_url=values.get("web_search_url"),
        search_key_env=values.get("web_search_key_env"),
        store_url=db_url,
        limits=WebLimits(
            fetch_max_bytes=values.get("web_fetch_max_bytes", 4 << 20),
            fetch_seconds=values.get("web_fetch_timeout", 30.0),
            session_max_requests=values.get("web_session_max_requests", 200),
            session_max_bytes=values.get("web_session_max_bytes", 64 << 20),
            session_seconds=values.get("web_session_timeout", 600.0),
        ),
    )
    return settings.validated().with_key(environ)
