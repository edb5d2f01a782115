"""One way to turn a role's settings (flags, environment, config file) into a `RoleConfig`.

Every command that talks to a model (`record`, `intents generate`, `intents personas`) takes the
same `--ROLE-*` options and hands them here, so a role means the same thing everywhere. The
options arrive as a plain mapping keyed like click's parameters (`agent_model`,
`agent_api_key_env`, ...): the config file's `[record.agent]` table lands in the same keys.

The API key is never read here, only which variable holds it, and whether there is one:
- the default variable `ISE_ES_<ROLE>_API_KEY` is a suggestion: unset (or empty) means the
  endpoint wants no key, as a local vLLM does;
- `none` (any case) says so explicitly;
- any other name is the user's choice, so an unset variable of that name is an error that
  names it (a typo must not silently send no key to a server that wants one).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ise_es.errors import ConfigError

if TYPE_CHECKING:  # imported by the function: `--help` reads this module's defaults
    from ise_es.llm.base import RoleConfig

__all__ = [
    "DEFAULT_BASE_URL",
    "NO_KEY",
    "OPTION_FIELDS",
    "default_key_env",
    "key_env",
    "role_config_from_options",
]

DEFAULT_BASE_URL = "http://127.0.0.1:8000/v1"

NO_KEY = "none"
"""The `--ROLE-api-key-env` value that means "this endpoint wants no key"."""

OPTION_FIELDS = {
    # option suffix -> RoleConfig field
    "model": "model",
    "base_url": "base_url",
    "api_key_env": "api_key_env",
    "temperature": "temperature",
    "max_tokens": "max_tokens",
    "timeout": "timeout_s",
    "retries": "max_retries",
}
"""The `--ROLE-*` options every model-using command takes (see ise_es.commands.options)."""


def default_key_env(role: str) -> str:
    """The variable looked up when the user names none: `ISE_ES_AGENT_API_KEY`, ..."""
    return f"ISE_ES_{role.upper()}_API_KEY"


def key_env(role: str, name: str | None, environ: Mapping[str, str]) -> str | None:
    """The variable that holds `role`'s key, or None when the endpoint gets no key.

    Raises:
        ConfigError: `name` is a variable the user chose and `environ` does not have it.
    """
    if name is None or not name.strip() or name.strip().lower() == NO_KEY:
        return None
    name = name.strip()
    if environ.get(name):
        return name
    if name == default_key_env(role):
        return None
    raise ConfigError(
        f"role {role!r}: environment variable {name} (--{role}-api-key-env) is not set; "
        f"export it, or pass --{role}-api-key-env {NO_KEY} for a server that wants no key"
    )


def role_config_from_options(
    role: str, options: Mapping[str, Any], environ: Mapping[str, str]
) -> RoleConfig:
    """The RoleConfig of `role` from its `{role}_*` options; unset options take the defaults.

    Raises:
        ConfigError: no `{role}_model`, a value out of range, or a key variable the user named
            that is not set (see `key_env`).
    """
    from ise_es.llm.base import RoleConfig

    values = {f: options.get(f"{role}_{suffix}") for suffix, f in OPTION_FIELDS.items()}
    if not values["model"]:
        raise ConfigError(f"role {role!r} needs a model: pass --{role}-model")
    values["api_key_env"] = key_env(
        role, options.get(f"{role}_api_key_env", default_key_env(role)), environ
    )
    # Unset options (None) leave RoleConfig's defaults in place.
    data = {"role": role, **{k: v for k, v in values.items() if v is not None}}
    return RoleConfig.from_mapping(data, source=f"--{role}-* options")
