"""`ise-es`: the command line's entry point: the main group, the settings file, and the
registration of the command groups, which live in ise_es/commands/ (one module per group).

Library errors (`IseEsError`) become one-line messages in the presentation layer and nowhere
else (`ise_es.commands.common.reports_errors`): exit 2 for bad configuration or input and
unreachable services, 1 for other failures.
"""

from __future__ import annotations

from pathlib import Path

import click

from ise_es.commands import db as _db
from ise_es.commands import diversity as _diversity
from ise_es.commands import imports as _imports
from ise_es.commands import intents as _intents
from ise_es.commands import project as _project
from ise_es.commands import publish as _publish
from ise_es.commands import queue as _queue
from ise_es.commands import record as _record
from ise_es.commands import replay as _replay
from ise_es.commands import sandbox as _sandbox
from ise_es.commands import schemas as _schemas
from ise_es.commands import sessions as _sessions
from ise_es.commands.projectall import project_all as _project_all
from ise_es.commands.serve import serve_command as _serve_command
from ise_es.errors import IseEsError


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "ISE_ES"}
)
@click.version_option(package_name="ise-es")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ISE_ES_CONFIG",
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _param, value: _load_config(ctx, value),
    help="Settings file (TOML); default ./ise-es.toml when present. Flags and environment "
    "variables override it.",
)
def main() -> None:
    """ise-es: record, replay and project execution-grounded agent trajectories.

    \b
    Example:
        ise-es db upgrade --db sqlite:///corpus.db
        ise-es record --scenario shipped --db sqlite:///corpus.db
    """


# ----------------------------------------------------------------------------- store

main.add_command(_db.db_group)
main.add_command(_db.verify_command)
main.add_command(_schemas.schemas_group)


# ----------------------------------------------------------------------------- record

main.add_command(_record.record_command)
main.add_command(_record.worker_command)
main.add_command(_queue.queue_group)


# ----------------------------------------------------------------------------- sessions

main.add_command(_sessions.sessions_group)


# ----------------------------------------------------------------------------- replay

main.add_command(_replay.replay_command)


# ----------------------------------------------------------------------------- project

main.add_command(_project.project_group)
_project.project_group.add_command(_publish.hf_dataset_command)
_project.project_group.add_command(_publish.atif_command)
_project.project_group.add_command(_diversity.diversity_command)
_project.project_group.add_command(_project_all)


# ----------------------------------------------------------------------------- import

main.add_command(_imports.import_group)
_imports.import_group.add_command(_imports.import_middle_command)
_imports.import_group.add_command(_publish.import_atif_command)


# ----------------------------------------------------------------------------- the rest

main.add_command(_serve_command)
main.add_command(_sandbox.sandbox_group)
main.add_command(_intents.intents_group)


# ----------------------------------------------------------------------------- settings


def _option_names(group: click.Group) -> dict[str, set[str]]:
    """{"command" or "group.command": its parameter names}: what a settings file may set."""
    names: dict[str, set[str]] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            for sub, options in _option_names(command).items():
                names[f"{name}.{sub}"] = options
        else:
            names[name] = {p.name for p in command.params if p.name}
    return names


def _load_config(ctx: click.Context, value: Path | None) -> None:
    from ise_es.config import DEFAULT_CONFIG, default_map

    path = value or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    if path is None:
        return
    try:
        ctx.default_map = default_map(path, _option_names(main))
    except IseEsError as e:
        raise click.UsageError(str(e)) from e


if __name__ == "__main__":
    main()
