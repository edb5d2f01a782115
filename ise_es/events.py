"""Every event ise-es records: the contract between the stages.

An event is a frozen msgspec Struct, a member of one tagged union (`Event`). The tag (field
`type`) is a stable snake_case name that never changes once released. The store keeps each
event's payload as the JSON of its Struct, so a row can be read with `sqlite3` or `psql`.

Schema evolution rules (the same as msgspec's advice, written down so they are kept):

1. A new field always gets a default, so events written before it still decode.
2. A field's type never changes and a field is never renamed or reused; add a new field instead.
3. Unknown fields are tolerated on decode (a newer writer may have added an optional field).
4. A change that breaks rule 1 or 2 bumps that event type's ``schema_version`` (a ClassVar) and
   adds a pure ``upcast`` function ``(payload dict) -> payload dict`` from version N to N+1 in
   ``UPCASTERS``. Rows keep the version they were written with; readers upcast on decode.
5. A row whose type is unknown, or whose version is newer than this code knows, fails to decode
   with `UnknownEventType` naming the type and the version: it is never guessed at.

This module does no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import msgspec

from ise_es.errors import InvalidEvent, UnknownEventType

__all__ = [
    "EVENT_TYPES",
    "AgentMessage",
    "ChunkStream",
    "Event",
    "FileChange",
    "FsDiff",
    "HttpExchange",
    "HttpSent",
    "IntentImported",
    "IntentRejected",
    "IntentRendered",
    "IntentSampled",
    "ModelCall",
    "ModelSpec",
    "OutputChunk",
    "PersonaPoolFrozen",
    "ReplayEnded",
    "ReplayStarted",
    "SessionEnded",
    "SessionStarted",
    "StepReplayed",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "Usage",
    "UserTurn",
    "WebSpec",
    "decode_payload",
    "decode_union",
    "encode_checked",
    "encode_payload",
    "event_type_of",
]


class _Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event payload: frozen, keyword-only, tagged by `type`."""

    schema_version: ClassVar[int] = 1


class _Part(msgspec.Struct, frozen=True, kw_only=True):
    """Base of value objects nested inside events (not events themselves)."""


# --------------------------------------------------------------------------------------------
# Value objects
# --------------------------------------------------------------------------------------------


class ModelSpec(_Part, frozen=True):
    """One LLM role's configuration as it was used (never the API key itself)."""

    role: str
    """agent | user | render | persona."""
    backend: str
    """openai (an OpenAI-compatible HTTP endpoint) or scripted (a scenario file)."""
    model: str
    base_url: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


class ToolCall(_Part, frozen=True):
    """One tool call as the model emitted it."""

    id: str
    name: str
    arguments: str
    """The arguments exactly as emitted: a JSON string, possibly malformed."""


class Usage(_Part, frozen=True):
    """Token usage reported by the server for one model call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None


class FileChange(_Part, frozen=True):
    """One path that a tool call changed in the workspace."""

    path: str
    """Relative to the workspace root, '/'-separated."""
    kind: Literal["added", "modified", "deleted", "mode", "symlink"]
    mode: int | None = None
    """st_mode permission bits (0o7777 mask); None for deletions."""
    size: int | None = None
    digest: str | None = None
    """sha256 of the new content (regular files)."""
    stored: bool = False
    """True when the content is in the blob store under `digest` (False: over the size cap)."""
    link_target: str | None = None
    """For symlinks: where the link points."""


ChunkStream = Literal["stdout", "stderr"]


class WebSpec(_Part, frozen=True):
    """How the session's web tools reached the web (never an API key or the store's URL)."""

    mode: str
    """fixture (the offline fixture site) | live (the real web through the egress policy) |
    off (no web tools)."""
    search: str | None = None
    """The search provider of live mode: searxng | serper | brave; None: no web search."""
    search_url: str | None = None
    allow: list[str] = []
    """Egress policy entries as written (`--web-allow`, `--web-deny`) and the allowed ports."""
    deny: list[str] = []
    ports: list[int] = []
    limits: dict[str, float] = {}
    """Per fetch and per session: fetch_max_bytes, fetch_seconds, session_max_requests,
    session_max_bytes, session_seconds."""


class HttpSent(_Part, frozen=True):
    """The request the gateway really sent for a logical one (a search provider's API call),
    with secrets replaced by `[redacted]`."""

    via: str
    """The search provider whose answer the body is (searxng | serper | brave)."""
    method: str
    url: str
    headers: dict[str, str] = {}
    body: str = ""


# --------------------------------------------------------------------------------------------
# Session streams: session-<id>
# --------------------------------------------------------------------------------------------


class SessionStarted(_Base, frozen=True, tag="session_started"):
    """A recording session began: everything needed to understand and replay it."""

    session_id: str
    intent_id: str
    intent: str
    """The natural-language intent the user simulator works from."""
    intent_record: dict[str, Any] = {}
    """The intent as sampled or imported (domains, tasks, complexity, tools...)."""
    persona: dict[str, Any] | None = None
    scenario: str | None = None
    """Scenario file name when the scripted backend drives the session."""
    models: list[ModelSpec] = []
    system_prompt: str = ""
    tool_schemas: list[dict[str, Any]] = []
    """The OpenAI function schemas the agent saw."""
    sandbox_backend: str = ""
    template: str = ""
    template_digest: str = ""
    seeds: dict[str, int] = {}
    environment: dict[str, str] = {}
    """Pinned environment of every tool call (TZ, LANG, SOURCE_DATE_EPOCH...)."""
    attempt: int = 1
    """1 for the first recording of an intent, 2 after one interrupted session, ..."""
    provenance: dict[str, Any] = {}
    """Where the session came from: recorder version and host, or an imported file's name and
    digest."""
    web: WebSpec | None = None
    """The web settings the session was recorded with (None: recorded before they existed, which
    means the fixture web)."""
    started_at: float | None = None
    """When the session really began (seconds since the epoch, UTC) if that is not the
    envelope's `recorded_at`: an imported session's first timestamp. None: `recorded_at`."""
    intents: list[dict[str, Any]] = []
    """Every intent the session works through, in order, when there are several (intents per
    session, an appended query): `{intent_id, natural_language_intent, simulated}` plus the
    record's `answer` or `task_type` when it has one; UserTurn.intent_id says which turn
    belongs to which. Empty: the session's one intent (`intent_id`, `intent`)."""


class UserTurn(_Base, frozen=True, tag="user_turn"):
    """The user simulator's output for one turn."""

    turn: int
    """1-based user turn number."""
    text: str
    completed: bool = False
    """The simulator judged the intent fulfilled (no further request)."""
    reason: str = ""
    raw: str = ""
    """The simulator's raw output before parsing."""
    intent_id: str = ""
    """The intent this turn works towards, in a session that works through several (intents
    per session, an appended query); empty: the session's only intent."""


class ModelCall(_Base, frozen=True, tag="model_call"):
    """One request/response exchange with an LLM (including failed attempts' record)."""

    role: str
    """agent | user | render | persona."""
    model: str
    backend: str = "openai"
    base_url: str | None = None
    parameters: dict[str, Any] = {}
    request_digest: str | None = None
    """Blob digest of the request body (messages + tools)."""
    response: dict[str, Any] = {}
    """The assistant message as returned: content, reasoning, tool_calls."""
    finish_reason: str | None = None
    usage: Usage = Usage()
    latency_ms: float = 0.0
    retries: list[dict[str, Any]] = []
    """One entry per failed attempt: status, error, waited_s."""
    error: str | None = None
    """Set when the call failed after all retries."""


class AgentMessage(_Base, frozen=True, tag="agent_message"):
    """What the agent said in one step: text, hidden reasoning, and the tool calls it made."""

    turn: int
    step: int
    """0-based model step within the turn."""
    text: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = []


class ToolCallStarted(_Base, frozen=True, tag="tool_call_started"):
    """A tool call began executing in the sandbox."""

    call_id: str
    tool: str
    arguments: str
    """The arguments exactly as the model emitted them (JSON string, possibly malformed)."""
    turn: int = 0
    step: int = 0
    index: int = 0
    """0-based position of this call among all tool calls of the session."""


class OutputChunk(_Base, frozen=True, tag="output_chunk"):
    """A piece of a running tool call's stdout or stderr, as it arrived.

    Chunks are at most 64 KiB; past the recorder's head limit they stop and the full output
    is kept as a blob named by ToolCallFinished.
    """

    call_id: str
    stream: ChunkStream
    seq: int
    """0-based, per call, across both streams (so interleaving order is kept)."""
    data: bytes


class HttpExchange(_Base, frozen=True, tag="http_exchange"):
    """A web request a tool made through the host gateway, kept so replay is hermetic."""

    call_id: str
    method: str
    url: str
    status: int
    headers: dict[str, str] = {}
    body_digest: str | None = None
    body_size: int = 0
    error: str | None = None
    peer: str | None = None
    """The checked address the live gateway connected to (`ip:port`); None for fixture runs."""
    sent: HttpSent | None = None
    """The provider request behind a logical search request."""
    blocked: str | None = None
    """Why the egress policy refused the request (nothing was sent); `error` says it too."""
    limit: str | None = None
    """The egress limit this request hit: fetch_bytes, fetch_seconds, session_requests,
    session_bytes or session_seconds."""


class ToolCallFinished(_Base, frozen=True, tag="tool_call_finished"):
    """A tool call ended; `result_text` is exactly what the agent saw."""

    call_id: str
    tool: str
    result_text: str
    is_error: bool = False
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    duration_ms: float = 0.0
    error: str | None = None
    """Why the tool failed before or outside the command (bad arguments, unknown tool...)."""
    stdout_digest: str | None = None
    stdout_size: int = 0
    stderr_digest: str | None = None
    stderr_size: int = 0
    truncated: bool = False
    """True when chunks stopped before the end of the output (the blobs hold the rest)."""
    details: dict[str, Any] = {}
    """Structured details beside the text (status, cwd, process session id...)."""


class FsDiff(_Base, frozen=True, tag="fs_diff"):
    """The workspace changes caused by one tool call (empty `changes` is not recorded)."""

    call_id: str
    changes: list[FileChange]


class SessionEnded(_Base, frozen=True, tag="session_ended"):
    """The session is over. Only `completed` sessions are trajectories by default."""

    status: Literal["completed", "turn_cap", "stalled", "error", "interrupted"]
    reason: str = ""
    user_turns: int = 0
    tool_calls: int = 0
    infrastructure: bool = False
    """True when the session ended for a reason outside the models' behaviour (endpoint
    unreachable or retries exhausted, sandbox failure, recorder crash, lease lost): the work
    queue records such an item again. False for outcomes the agent and simulator produced."""
    ended_at: float | None = None
    """When the session really ended (seconds since the epoch, UTC) if that is not the
    envelope's `recorded_at`: an imported session's last timestamp. None: `recorded_at`."""


# --------------------------------------------------------------------------------------------
# Replay streams: replay-<id>
# --------------------------------------------------------------------------------------------


class ReplayStarted(_Base, frozen=True, tag="replay_started"):
    """A replay of a recorded session began in a fresh sandbox."""

    replay_id: str
    source_stream: str
    source_version: int
    """The source stream's version that was replayed (it is never modified)."""
    sandbox_backend: str
    template: str = ""
    template_digest: str = ""
    normalizers: list[str] = []


class StepReplayed(_Base, frozen=True, tag="step_replayed"):
    """The verdict for one re-executed tool call."""

    index: int
    call_id: str
    tool: str
    verdict: Literal["identical", "equivalent", "diverged", "missing"]
    differences: list[dict[str, Any]] = []
    """Per field: {field, diff, normalizers}."""
    normalizers_fired: list[str] = []
    after_divergence: bool = False
    """True when an earlier step diverged, so this one may be a consequence."""


class ReplayEnded(_Base, frozen=True, tag="replay_ended"):
    """A replay finished (or could not go on)."""

    status: Literal["reproduced", "equivalent", "diverged", "failed"]
    counts: dict[str, int] = {}
    determinism: float = 0.0
    """Share of steps identical or equivalent."""
    first_divergence: int | None = None
    reason: str = ""


# --------------------------------------------------------------------------------------------
# Intent and persona streams: intent-<id>, persona-pool-<id>
# --------------------------------------------------------------------------------------------


class IntentSampled(_Base, frozen=True, tag="intent_sampled"):
    """A structured intent tuple drawn by the seeded 4D sampler."""

    intent_id: str
    persona_id: str
    domains: list[str]
    tasks: list[str]
    complexity: Literal["simple", "medium", "complex"]
    tools: list[str] = []
    seed: int | None = None
    pool_digest: str | None = None
    pool_id: str | None = None
    """The frozen persona pool the persona was drawn from (stream persona-pool-<pool_id>)."""
    index: int | None = None
    """The draw's number within its seed: (seed, pool, index) reproduces the tuple."""


class IntentRendered(_Base, frozen=True, tag="intent_rendered"):
    """The natural-language request rendered for a sampled (or imported) intent."""

    intent_id: str
    text: str
    renderer: str
    """llm | template | import."""
    model: str | None = None
    attempts: int = 1
    text_digest: str = ""
    problems: list[str] = []
    """Why each earlier attempt was rejected by the validator (empty when the first passed)."""


class IntentImported(_Base, frozen=True, tag="intent_imported"):
    """An intent read from a reference-schema JSONL file, kept as it was written."""

    intent_id: str
    record: dict[str, Any]
    source_file: str = ""
    source_line: int = 0


class IntentRejected(_Base, frozen=True, tag="intent_rejected"):
    """An intent that will not be recorded, and why."""

    intent_id: str
    reason: Literal["duplicate", "invalid"]
    duplicate_of: str | None = None
    similarity: float | None = None
    detail: str = ""


class PersonaPoolFrozen(_Base, frozen=True, tag="persona_pool_frozen"):
    """A validated, deduplicated persona pool, frozen under a digest."""

    pool_id: str
    personas: list[dict[str, Any]]
    digest: str
    counts: dict[str, int] = {}


Event = (
    SessionStarted
    | UserTurn
    | ModelCall
    | AgentMessage
    | ToolCallStarted
    | OutputChunk
    | HttpExchange
    | ToolCallFinished
    | FsDiff
    | SessionEnded
    | ReplayStarted
    | StepReplayed
    | ReplayEnded
    | IntentSampled
    | IntentRendered
    | IntentImported
    | IntentRejected
    | PersonaPoolFrozen
)

EVENT_TYPES: dict[str, type[_Base]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        SessionStarted,
        UserTurn,
        ModelCall,
        AgentMessage,
        ToolCallStarted,
        OutputChunk,
        HttpExchange,
        ToolCallFinished,
        FsDiff,
        SessionEnded,
        ReplayStarted,
        StepReplayed,
        ReplayEnded,
        IntentSampled,
        IntentRendered,
        IntentImported,
        IntentRejected,
        PersonaPoolFrozen,
    )
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event type, from version) -> pure function producing the payload of version + 1."""

_encoder = msgspec.json.Encoder()
_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    tag: msgspec.json.Decoder(cls) for tag, cls in EVENT_TYPES.items()
}
_union_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)


def event_type_of(event: Event) -> str:
    """The stable tag of an event instance."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def encode_payload(event: Event) -> bytes:
    """The payload's canonical JSON (what the store keeps and hashes)."""
    return _encoder.encode(event)


def decode_payload(event_type: str, schema_version: int, payload: bytes | str) -> Event:
    """Decode a stored payload strictly, upcasting older schema versions.

    Raises:
        UnknownEventType: the type is unknown, or its version is newer than this code knows.
        InvalidEvent: the payload does not match its event type.
    """
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise UnknownEventType(
            f"unknown event type {event_type!r} (schema version {schema_version}): "
            "written by a newer ise-es? upgrade ise-es to read it"
        )
    if schema_version > cls.schema_version:
        raise UnknownEventType(
            f"event type {event_type!r} has schema version {schema_version}, newer than the "
            f"{cls.schema_version} this ise-es knows: upgrade ise-es to read it"
        )
    try:
        if schema_version == cls.schema_version:
            return _decoders[event_type].decode(payload)  # type: ignore[no-any-return]
        data = msgspec.json.decode(payload)
        for version in range(schema_version, cls.schema_version):
            data = UPCASTERS[(event_type, version)](data)
        return msgspec.convert(data, cls)  # type: ignore[return-value]
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise InvalidEvent(f"{event_type} v{schema_version}: {e}") from e


def decode_union(payload: bytes | str) -> Event:
    """Decode a payload of the current schema version by its tag alone (the fast path)."""
    try:
        return _union_decoder.decode(payload)
    except msgspec.ValidationError as e:
        raise InvalidEvent(str(e)) from e


def encode_checked(event: object) -> tuple[str, int, bytes]:
    """Encode an event for the store after checking that it is well-formed.

    msgspec Structs do not validate on construction, so a wrong field type would sneak through
    until someone decodes it; decoding the bytes we are about to write catches it at append time,
    before anything is written.

    Returns:
        (event type tag, schema version, payload JSON)

    Raises:
        InvalidEvent: not an event, or a field has the wrong type.
    """
    if not isinstance(event, _Base):
        raise InvalidEvent(f"not an ise-es event: {type(event).__name__}")
    tag: str = type(event).__struct_config__.tag  # type: ignore[assignment]
    payload = _encoder.encode(event)
    try:
        _decoders[tag].decode(payload)
    except msgspec.ValidationError as e:
        raise InvalidEvent(f"{tag}: {e}") from e
    return tag, type(event).schema_version, payload
