"""Settings from a TOML file, layered under the command line and the environment.

Precedence, highest first: command-line flags, environment variables (`ISE_ES_DB`, and
`ISE_ES_<COMMAND>_<OPTION>` for every other option, e.g. `ISE_ES_RECORD_WORKERS`), the config
file (`--config FILE`, `ISE_ES_CONFIG`, or `./ise-es.toml` when it exists), built-in defaults.

    db = "postgresql://ise:secret@127.0.0.1/corpus"   # every command's --db

    [record]
    workers = 4
    sandbox = "local"
    max_turns = 12

    [record.agent]                 # --agent-model, --agent-base-url, ...
    model = "qwen3-8b"
    base_url = "http://127.0.0.1:8000/v1"
    api_key_env = "VLLM_API_KEY"

    [record.user]
    model = "qwen3-8b"
    temperature = 0.7

The file becomes click's `default_map`, so a key is exactly an option's name with dashes as
underscores; a key that is not an option is an error naming the file and the key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ise_es.errors import ConfigError

__all__ = ["DEFAULT_CONFIG", "default_map"]

DEFAULT_CONFIG = Path("ise-es.toml")
ROLE_TABLES = ("agent", "user", "render", "persona")


def _flatten(command: str, table: Mapping[str, Any], path: Path) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            if key not in ROLE_TABLES:
                raise ConfigError(f"{path}: [{command}.{key}] is not a section ise-es knows")
            for sub, v in value.items():
                flat[f"{key}_{sub}"] = v
        else:
            flat[key] = value
    return flat


def default_map(path: Path, commands: Mapping[str, set[str]]) -> dict[str, Any]:
    """Read a config file into click's default_map.

    Args:
        commands: each command path (e.g. "record", "db.upgrade") -> its option names.

    Raises:
        ConfigError: unreadable file, bad TOML, or a key that is no option of its command.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    db = data.pop("db", None)
    if isinstance(db, dict):  # a [db] table configures the `db` command group instead
        data["db"], db = db, None
    result: dict[str, Any] = {}
    for command, options in commands.items():
        section: dict[str, Any] = {}
        if db is not None and "db_url" in options:
            section["db_url"] = db
        table = data.get(command.split(".")[0], {})
        if "." in command and isinstance(table, dict):
            table = table.get(command.split(".", 1)[1], {})
        if isinstance(table, dict):
            for key, value in _flatten(command, table, path).items():
                if key not in options:
                    raise ConfigError(
                        f"{path}: [{command}] has no option {key!r} "
                        f"(options: {', '.join(sorted(options))})"
                    )
                section[key] = value
        _nest(result, command.split("."), section)
    known = {c.split(".")[0] for c in commands}
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: unknown section or key {key!r}")
    return result


def _nest(target: dict[str, Any], parts: list[str], section: dict[str, Any]) -> None:
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target.setdefault(parts[-1], {}).update(section)
