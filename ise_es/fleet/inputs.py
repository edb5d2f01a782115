"""Work specs from what a user gives `record`: a scenario file or directory, or an intents
JSONL file, plus the recording settings. Everything is checked here, before anything is
enqueued or any sandbox starts: a missing template or a broken line stops the command."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import ConfigError, InvalidInput, TemplateError
from ise_es.fleet.spec import (
    RecordSettings,
    SegmentSpec,
    WorkSpec,
    intent_spec,
    scenario_spec,
    session_spec,
)
from ise_es.intents.jsonl import ParsedIntent, is_query_only, parse_intents_file
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
    intents_per_session: int = 1
    """Intents one session works through one after another, in file order."""
    append_queries: Path | None = None
    """Query-only lines: one is asked as a last user turn when a session completes."""


def role_configs(
    roles: Mapping[str, Any], environ: Mapping[str, str], *, user: bool = True
) -> tuple[RoleConfig, RoleConfig | None]:
    """The agent's and (when `user`) the user simulator's RoleConfig from the
    `--agent-*`/`--user-*` options.

    Raises:
        ConfigError: a model missing, or a key variable the user named that is not set.
    """
    for role in ("agent", "user") if user else ("agent",):
        if not roles.get(f"{role}_model"):
            why = "" if role == "agent" else " (query-only lines alone need none)"
            raise ConfigError(f"--intents needs --{role}-model (and --{role}-base-url){why}")
    agent = role_config_from_options("agent", roles, environ)
    return agent, role_config_from_options("user", roles, environ) if user else None


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
        if given.intents_per_session != 1 or given.append_queries is not None:
            raise ConfigError(
                "--intents-per-session and --append-queries apply to --intents (a scenario "
                "scripts its own turns)"
            )
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
    if given.intents_per_session < 1:
        raise ConfigError("--intents-per-session must be at least 1")
    intents, problems = parse_intents_file(given.intents_path, skip_invalid=given.skip_invalid)
    for problem in problems:
        if warn is not None:
            warn(problem)
    pool = _query_pool(given.append_queries) if given.append_queries else []
    simulated = any(not is_query_only(i.record) for i in intents)
    agent, user = role_configs(given.roles, environ, user=simulated)
    digests = check_templates([(None, given.template or "empty")], given.templates_dir)
    settings = msgspec.structs.replace(
        base, template_digest=digests[given.template or "empty"], agent=agent, user=user
    )
    return _grouped(intents, settings, given.intents_per_session, pool)


def _grouped(
    intents: list[ParsedIntent],
    settings: RecordSettings,
    per_session: int,
    pool: list[ParsedIntent],
) -> list[WorkSpec]:
    """One spec per session: an intent alone, or `per_session` of them in file order, and the
    appended query (chosen from the pool by the session's id, so a rerun asks the same one)."""
    specs = []
    for start in range(0, len(intents), per_session):
        group = intents[start : start + per_session]
        if len(group) == 1 and not pool:
            one = group[0]
            specs.append(
                intent_spec(
                    one.intent_id,
                    one.text,
                    one.record,
                    settings,
                    simulated=not is_query_only(one.record),
                )
            )
            continue
        segments = [_segment(i) for i in group]
        if pool:
            key = "+".join(s.intent_id for s in segments)
            segments.append(_segment(pool[zlib.crc32(key.encode()) % len(pool)]))
        specs.append(session_spec(segments, settings))
    return specs


def _segment(intent: ParsedIntent) -> SegmentSpec:
    return SegmentSpec(
        intent_id=intent.intent_id,
        text=intent.text,
        simulated=not is_query_only(intent.record),
        record=intent.record,
    )


def _query_pool(path: Path) -> list[ParsedIntent]:
    """Raises InvalidInput: a broken line, a line that is not query-only, or no line."""
    pool, _ = parse_intents_file(path)
    for query in pool:
        if not is_query_only(query.record):
            raise InvalidInput(
                f"{path}:{query.line}: --append-queries takes query-only lines "
                '({"query": ...} or {"question": ..., "answer": ...})'
            )
    if not pool:
        raise InvalidInput(f"{path}: no queries to append")
    return pool
