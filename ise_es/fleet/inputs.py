"""Work specs from what a user gives `record`: a scenario file or directory, or an intents
JSONL file, plus the recording settings. Everything is checked here, before anything is
enqueued or any sandbox starts: a missing template or a broken line stops the command."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import ConfigError, InvalidInput, TemplateError
from ise_es.fleet.spec import RecordSettings, WorkSpec, intent_spec, scenario_spec
from ise_es.llm.base import RoleConfig
from ise_es.llm.roles import role_config_from_options
from ise_es.sandbox.templates import load_template
from ise_es.simulate.scenario import load_scenarios
from ise_es.web.settings import WebSettings

__all__ = ["RecordInput", "build_specs", "check_templates", "role_configs"]


@dataclass(frozen=True)
class RecordInput:
    """The `record` options that decide what is recorded and how."""

    scenario_path: Path | None = None
    intents_path: Path | None = None
    backend: str = "local"
    template: str | None = None
    templates_dir: str | None = None
    max_turns: int = 12
    max_steps: int = 30
    system_prompt: str = ""
    skip_invalid: bool = False
    seed: int = 0
    roles: Mapping[str, Any] = field(default_factory=dict)
    """The --agent-*/--user-* options as click passes them (agent_model, user_base_url...)."""
    web: WebSettings = field(default_factory=WebSettings)


def role_configs(
    roles: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[RoleConfig, RoleConfig]:
    """The agent's and the user simulator's RoleConfig from the `--agent-*`/`--user-*` options.

    Raises:
        ConfigError: a model missing, or a key variable the user named that is not set.
    """
    for role in ("agent", "user"):
        if not roles.get(f"{role}_model"):
            raise ConfigError(f"--intents needs --{role}-model (and --{role}-base-url)")
    return (
        role_config_from_options("agent", roles, environ),
        role_config_from_options("user", roles, environ),
    )


def check_templates(
    uses: Iterable[tuple[Path | None, str]], templates_dir: str | None = None
) -> dict[str, str]:
    """Resolve every (source file, template name) a batch will use, so that a missing template
    stops the command before any sandbox starts, naming the file that asked for it. Returns
    each template's content digest.

    Raises:
        InvalidInput: a template that cannot be resolved (unknown name, missing directory).
    """
    digests: dict[str, str] = {}
    for source, name in uses:
        if name in digests:
            continue
        try:
            digests[name] = load_template(name, templates_dir=templates_dir).digest
        except TemplateError as e:
            raise InvalidInput(f"{source or '--template'}: {e}") from e
    return digests


def build_specs(
    given: RecordInput, environ: Mapping[str, str], *, warn: Any = None
) -> list[WorkSpec]:
    """The work specs of a record command, in input order.

    `warn(message)` receives each intent line skipped with `skip_invalid`.

    Raises:
        InvalidInput: a file that does not parse, names a missing template, or (scenarios)
            calls a tool that does not exist or with arguments its schema refuses.
        ConfigError: exactly one of scenario_path and intents_path is needed; models missing.
    """
    if (given.scenario_path is None) == (given.intents_path is None):
        raise ConfigError("give exactly one of --scenario FILE|DIR or --intents FILE.jsonl")
    base = RecordSettings(
        backend=given.backend,
        template=given.template,
        max_turns=given.max_turns,
        max_steps=given.max_steps,
        system_prompt=given.system_prompt,
        seed=given.seed,
        web=given.web,
    )
    if given.scenario_path is not None:
        scenarios = load_scenarios(given.scenario_path)
        digests = check_templates(
            [(f, given.template or s.template) for f, s in scenarios], given.templates_dir
        )
        return [
            scenario_spec(
                s,
                msgspec.structs.replace(
                    base, template_digest=digests[given.template or s.template]
                ),
            )
            for _, s in scenarios
        ]
    assert given.intents_path is not None
    from ise_es.intents.jsonl import parse_intents_file

    agent, user = role_configs(given.roles, environ)
    digests = check_templates([(None, given.template or "empty")], given.templates_dir)
    settings = msgspec.structs.replace(
        base, template_digest=digests[given.template or "empty"], agent=agent, user=user
    )
    intents, problems = parse_intents_file(given.intents_path, skip_invalid=given.skip_invalid)
    for problem in problems:
        if warn is not None:
            warn(problem)
    return [intent_spec(i.intent_id, i.text, i.record, settings) for i in intents]
