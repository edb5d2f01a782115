"""Work specs: everything a worker on any machine needs to record one intent or scenario, as
it travels in the queue, and the content digest that decides whether it is new.

A spec is self-contained: a scenario travels whole (its turns, not a path), an intent with its
record and persona, and the recording settings with each role's model configuration. What a
machine supplies itself is kept out of the digest: where it reaches the model endpoint and how
patiently (base URL, API-key variable, timeout, retries), where it keeps templates, and the web
search key. Those are the worker's own options (`MachineOverrides`); the model, its sampling
settings, the sandbox backend, the template (by content digest), the limits, the prompt, the
seed and the web policy are the recording's, fixed at enqueue time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec

from ise_es.errors import InvalidInput
from ise_es.llm.base import ChatClient, RoleConfig
from ise_es.simulate.run_modes import Segment
from ise_es.simulate.scenario import Scenario, ScriptedAgentClient, ScriptedUserClient
from ise_es.simulate.session import SessionPlan
from ise_es.store.base import NewWorkItem
from ise_es.web.settings import WebSettings

__all__ = [
    "ClientCache",
    "MachineOverrides",
    "RecordSettings",
    "SegmentSpec",
    "WorkSpec",
    "decode_spec",
    "intent_spec",
    "scenario_spec",
    "session_plan",
    "session_spec",
    "work_item",
]

_MACHINE_FIELDS = ("base_url", "api_key_env", "timeout_s", "max_retries")
"""RoleConfig fields a worker's machine decides (kept out of the digest)."""


class RecordSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The recording settings that travel with every item of one enqueue."""

    backend: str = "local"
    template: str | None = None
    """None: the scenario's own template, else `empty`."""
    template_digest: str = ""
    """The template's content digest at enqueue time (part of the item's digest)."""
    max_turns: int = 12
    max_steps: int = 30
    system_prompt: str = ""
    seed: int = 0
    web: WebSettings = msgspec.field(default_factory=WebSettings)
    agent: RoleConfig | None = None
    user: RoleConfig | None = None


class SegmentSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One intent of a session that works through several, or a query-only one."""

    intent_id: str
    text: str
    simulated: bool = True
    record: dict[str, Any] = {}


class WorkSpec(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Defaults are left out of the encoding, so a field added later (with its default) does
    not change the digest of what was queued before it existed."""

    kind: Literal["scenario", "intent", "query", "intents"]
    """scenario; intent (simulated); query (query-only: no simulator); intents (several in one
    session, or one with an appended query): `segments` lists them."""
    source_id: str
    settings: RecordSettings
    scenario: Scenario | None = None
    intent: str = ""
    intent_record: dict[str, Any] = {}
    persona: dict[str, Any] | None = None
    segments: list[SegmentSpec] = []


@dataclasses.dataclass(frozen=True)
class MachineOverrides:
    """What the machine running a worker decides for itself."""

    roles: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """role -> RoleConfig fields among base_url, api_key_env, timeout_s, max_retries."""
    templates_dir: str | None = None
    environ: Mapping[str, str] = dataclasses.field(default_factory=dict)
    db_url: str | None = None
    """The store's URL: the web egress policy refuses the store's own address."""


def scenario_spec(scenario: Scenario, settings: RecordSettings) -> WorkSpec:
    return WorkSpec(
        kind="scenario",
        source_id=scenario.id,
        settings=settings,
        scenario=scenario,
        intent=scenario.intent,
        persona=scenario.persona,
    )


def intent_spec(
    intent_id: str,
    text: str,
    record: Mapping[str, Any],
    settings: RecordSettings,
    *,
    simulated: bool = True,
) -> WorkSpec:
    """One intent, one session: simulated, or query-only (the text goes to the agent)."""
    metadata = record.get("metadata")
    persona = metadata.get("persona") if isinstance(metadata, dict) else None
    return WorkSpec(
        kind="intent" if simulated else "query",
        source_id=intent_id,
        settings=settings,
        intent=text,
        intent_record=dict(record),
        persona=persona if isinstance(persona, dict) else None,
    )


def session_spec(segments: list[SegmentSpec], settings: RecordSettings) -> WorkSpec:
    """Several intents worked one after another in one session (the first one's record and
    persona describe the session); its id joins theirs."""
    first = segments[0]
    metadata = first.record.get("metadata")
    persona = metadata.get("persona") if isinstance(metadata, dict) else None
    return WorkSpec(
        kind="intents",
        source_id="+".join(s.intent_id for s in segments),
        settings=settings,
        intent=first.text,
        intent_record=dict(first.record),
        persona=persona if isinstance(persona, dict) else None,
        segments=segments,
    )


_encoder = msgspec.json.Encoder(order="deterministic")


def _web_for_wire(web: WebSettings) -> WebSettings:
    """Never the search key (a secret) nor the store URL (it may hold a password)."""
    return dataclasses.replace(web, search_key=None, store_url=None)


def work_item(spec: WorkSpec) -> NewWorkItem:
    """The queue row for a spec; its digest covers what changes the recorded result."""
    settings = msgspec.structs.replace(spec.settings, web=_web_for_wire(spec.settings.web))
    wire = msgspec.structs.replace(spec, settings=settings)
    digest_view = msgspec.structs.replace(
        wire,
        settings=msgspec.structs.replace(
            settings,
            agent=_without_machine_fields(settings.agent),
            user=_without_machine_fields(settings.user),
        ),
    )
    return NewWorkItem(
        source_id=spec.source_id,
        kind=spec.kind,
        digest=hashlib.sha256(_encoder.encode(digest_view)).hexdigest(),
        spec=_encoder.encode(wire),
    )


def _without_machine_fields(config: RoleConfig | None) -> RoleConfig | None:
    if config is None:
        return None
    fresh = RoleConfig(role=config.role, model=config.model)
    return msgspec.structs.replace(config, **{n: getattr(fresh, n) for n in _MACHINE_FIELDS})


def decode_spec(data: bytes, *, item_id: str = "") -> WorkSpec:
    """Raises InvalidInput naming the item when the queued spec does not decode (written by a
    newer ise-es, or a backfilled item with nothing to record)."""
    try:
        return msgspec.json.decode(data, type=WorkSpec)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"work item {item_id}: its spec does not decode ({e})") from e


def session_plan(
    spec: WorkSpec,
    *,
    attempt: int,
    machine: MachineOverrides | None = None,
    clients: Callable[[RoleConfig], ChatClient] | None = None,
) -> SessionPlan:
    """The SessionPlan a worker records for a spec. `clients` makes (or reuses) the model
    client of a role; by default a new one per session."""
    machine = machine or MachineOverrides()
    make = clients or (lambda config: _openai(config, machine.environ))
    settings = spec.settings
    agent: ChatClient
    user: ChatClient | None
    if spec.kind == "scenario":
        assert spec.scenario is not None
        agent, user = ScriptedAgentClient(spec.scenario), ScriptedUserClient(spec.scenario)
        template = settings.template or spec.scenario.template
        record = _scenario_record(spec.scenario)
        scenario_name: str | None = spec.scenario.name
        # The scenario's own id, not the item's: the names the process tool makes up from it
        # are the ones the scenario file refers to, whatever id the item was queued under.
        seed_key = spec.scenario.id
    else:
        simulated = spec.kind == "intent" or any(s.simulated for s in spec.segments)
        agent = make(_role(settings.agent, "agent", machine))
        user = make(_role(settings.user, "user", machine)) if simulated else None
        template, record, scenario_name = settings.template or "empty", spec.intent_record, None
        seed_key = spec.source_id
    web = dataclasses.replace(settings.web, store_url=machine.db_url).with_key(machine.environ)
    return SessionPlan(
        intent_id=spec.source_id,
        intent=spec.intent,
        agent=agent,
        user=user,
        template=template,
        backend=settings.backend,
        persona=spec.persona,
        intent_record=record,
        scenario=scenario_name,
        system_prompt=settings.system_prompt,
        max_turns=settings.max_turns,
        max_steps_per_turn=settings.max_steps,
        attempt=attempt,
        # Tied to the item, not to its place in a file or queue, so any machine records the
        # same names (the process tool's session names come from it).
        seed=settings.seed ^ zlib.crc32(seed_key.encode()),
        sandbox_options={"templates_dir": machine.templates_dir} if machine.templates_dir else {},
        web=web,
        segments=_segments(spec),
    )


def _segments(spec: WorkSpec) -> tuple[Segment, ...]:
    if spec.kind == "query":
        return (Segment(spec.source_id, spec.intent, simulated=False, record=spec.intent_record),)
    return tuple(
        Segment(s.intent_id, s.text, simulated=s.simulated, record=s.record) for s in spec.segments
    )


def _scenario_record(scenario: Scenario) -> dict[str, Any]:
    return {
        "id": scenario.id,
        "natural_language_intent": scenario.intent,
        "domains": scenario.domains,
        "tasks": scenario.tasks,
        "complexity": scenario.complexity,
    }


def _role(config: RoleConfig | None, role: str, machine: MachineOverrides) -> RoleConfig:
    if config is None:
        raise InvalidInput(f"the work item has no {role} model configured")
    overrides = {k: v for k, v in machine.roles.get(role, {}).items() if k in _MACHINE_FIELDS}
    return msgspec.structs.replace(config, **overrides) if overrides else config


class ClientCache:
    """One model client per role configuration for a whole worker: a client holds an HTTP
    connection pool and a TLS context, whose set-up (loading the CA store) cost more CPU than
    the rest of a short session. The clients are stateless between calls and thread-safe."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._clients: dict[bytes, ChatClient] = {}
        self._lock = threading.Lock()

    def __call__(self, config: RoleConfig) -> ChatClient:
        key = msgspec.json.encode(config)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = _openai(config, self._environ)
            return client


def _openai(config: RoleConfig, environ: Mapping[str, str]) -> ChatClient:
    from ise_es.llm.openai_client import OpenAIChatClient

    return OpenAIChatClient(config, environ=environ)
