"""A session stream folded into the shape every projection reads.

`fold_session` is a pure function of one `session-<id>` stream's events (in version order).
Output chunks and HTTP exchanges are skipped: a tool message is `ToolCallFinished.result_text`,
exactly what the agent saw, and the raw bytes stay in the log for replay.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ise_es.events import (
    AgentMessage,
    FsDiff,
    ModelCall,
    SessionEnded,
    SessionStarted,
    ToolCallFinished,
    ToolCallStarted,
    UserTurn,
)
from ise_es.store.base import StoredEvent
from ise_es.store.projection import Payload

_decode_json = msgspec.json.decode


def parse_json(text: str | bytes) -> Any:
    """`json.loads(text)`, through msgspec when it accepts the text: stats and audit parse
    every call's arguments, 0.3 us each this way against 5.6 us. Where msgspec accepts, the
    value is json.loads's; where it refuses (NaN, Infinity, 1e400, lone surrogates, malformed
    text), json.loads decides, so the value or the ValueError is exactly json.loads's."""
    try:
        return _decode_json(text)
    except msgspec.DecodeError:
        return json.loads(text)


__all__ = [
    "CONVERSATION_TYPES",
    "FAILED_STATUSES",
    "FAILURE_RULE",
    "SESSION_EVENT_TYPES",
    "AgentStep",
    "Entry",
    "SessionView",
    "call_failed",
    "fold_payloads",
    "fold_session",
    "function_schemas",
    "outcome_failed",
    "parse_json",
    "reference_failed",
    "result_reports_error",
    "session_id_of",
]

SESSION_EVENT_TYPES = (
    "session_started",
    "user_turn",
    "model_call",
    "agent_message",
    "tool_call_finished",
    "fs_diff",
    "session_ended",
)
"""The event types projections read. Output chunks and HTTP exchanges (the raw bytes, kept for
replay) and ToolCallStarted (its tool and arguments repeat the AgentMessage's call) are not
needed, and skipping them in the query saves decoding a third of a session's events."""

CONVERSATION_TYPES = (
    "session_started",
    "user_turn",
    "agent_message",
    "tool_call_finished",
    "session_ended",
)
"""What a view's conversation (`started`, `entries`, `closing`, `ended`) is folded from: all
the audit and the chat formats read. `model_calls` (and `AgentStep.model_call`) need
"model_call" too, `diffs` "fs_diff"."""

FAILED_STATUSES = frozenset({"error", "failed", "failure", "timeout", "timed_out", "killed"})

FAILURE_RULE = """A tool call failed when any of its signals says so:
  - the tool reported an error (`is_error`, OpenClaw's `isError`), timed out or was killed by
    a signal;
  - it exited non-zero (`exit_code`, or `details.exitCode`);
  - `details.status` is one of error, failed, failure, timeout, timed_out, killed;
  - `details.error` is set (a non-empty string, object or list);
  - the result text is a JSON object whose top-level `error` is set
    (`{"error": "unsupported_freshness"}` from a web tool that left `isError` false).
Everything else succeeded: a backgrounded command still `running` has not failed."""
"""The rule behind `success` in every export and behind the failure statistics. It is stricter
than the reference converter, whose `success` is `not isError` alone (`--success reference`
reproduces that)."""


def _error_value(value: Any) -> bool:
    """A non-empty `error` (string, object or list): `None`, `""` and `false` say no error."""
    return value is not None and value is not False and value != "" and value != {}


def result_reports_error(text: str) -> bool:
    """Whether a tool result's text is a JSON object whose top-level `error` is set, as
    OpenClaw's web tools answer (`{"error": "unsupported_freshness", ...}`, `isError` false)."""
    head = text.lstrip()
    if not head.startswith("{") or '"error"' not in head:
        return False
    try:
        parsed = json.loads(head)
    except ValueError:
        return False
    return isinstance(parsed, dict) and _error_value(parsed.get("error"))


def outcome_failed(
    *,
    is_error: bool,
    details: dict[str, Any],
    result_text: str = "",
    exit_code: int | None = None,
    timed_out: bool = False,
    signal: int | None = None,
) -> bool:
    """The one failure rule (FAILURE_RULE), from the raw signals a result carries; the
    importers use it to set `is_error` and `call_failed` applies it to a recorded result."""
    if is_error or timed_out or signal is not None:
        return True
    if exit_code not in (None, 0):
        return True
    status = details.get("status")
    if isinstance(status, str) and status.lower() in FAILED_STATUSES:
        return True
    code = details.get("exitCode")
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        return True
    if _error_value(details.get("error")):
        return True
    return result_reports_error(result_text)


def call_failed(finished: ToolCallFinished) -> bool:
    """Whether a tool call failed, from every signal it carries (see FAILURE_RULE).

    `is_error` alone misses commands that ran and failed (a non-zero exit code, or a `details`
    status of error/failed): the reference converter's `success` came from `isError` alone and
    so called failed commands successful.
    """
    return outcome_failed(
        is_error=finished.is_error,
        details=finished.details,
        result_text=finished.result_text,
        exit_code=finished.exit_code,
        timed_out=finished.timed_out,
        signal=finished.signal,
    )


def reference_failed(finished: ToolCallFinished) -> bool:
    """The reference converter's rule: failed only when the raw `isError` flag says so (the
    importers keep the raw flag in `details["isError"]`; recorded calls have `is_error`)."""
    raw = finished.details.get("isError")
    return raw if isinstance(raw, bool) else finished.is_error


def session_id_of(stream_id: str) -> str:
    return stream_id.removeprefix("session-")


@dataclass(slots=True)
class AgentStep:
    """One agent message and the model call that produced it (None for imported gaps)."""

    message: AgentMessage
    model_call: ModelCall | None = None


Entry = UserTurn | AgentStep | ToolCallFinished


@dataclass(slots=True)
class SessionView:
    """One session as projections see it. `entries` keeps log order."""

    stream_id: str
    started: SessionStarted | None = None
    ended: SessionEnded | None = None
    entries: list[Entry] = field(default_factory=list)
    closing: UserTurn | None = None
    """The simulator's closing turn (completed=True): not a user message in SFT."""
    tool_starts: dict[str, ToolCallStarted] = field(default_factory=dict)
    diffs: dict[str, list[FsDiff]] = field(default_factory=dict)
    model_calls: list[ModelCall] = field(default_factory=list)
    first_version: int = 0
    last_version: int = 0
    last_position: int = 0

    @property
    def session_id(self) -> str:
        return self.started.session_id if self.started else session_id_of(self.stream_id)

    @property
    def status(self) -> str | None:
        """The SessionEnded status, or None while the session is still open."""
        return self.ended.status if self.ended else None

    @property
    def intent_id(self) -> str:
        return self.started.intent_id if self.started else ""

    @property
    def complete(self) -> bool:
        """The fold saw the stream from its first event."""
        return self.first_version == 1

    def user_turns(self) -> list[UserTurn]:
        return [e for e in self.entries if isinstance(e, UserTurn)]

    def results(self) -> list[ToolCallFinished]:
        return [e for e in self.entries if isinstance(e, ToolCallFinished)]

    def tool_call_count(self) -> int:
        return sum(len(e.message.tool_calls) for e in self.entries if isinstance(e, AgentStep))


def fold_session(events: Iterable[StoredEvent], stream_id: str | None = None) -> SessionView:
    """Fold one session stream's events (version order) into a `SessionView`."""
    return fold_payloads(
        [(e.position, e.stream_id, e.version, e.type, e.data) for e in events], stream_id
    )


def fold_payloads(events: Sequence[Payload], stream_id: str | None = None) -> SessionView:
    """`fold_session` over `(position, stream id, version, type, payload)` tuples, what the
    store's `read_payloads` gives: the one-pass projections fold these (onepass.py)."""
    view = SessionView(stream_id=stream_id or "")
    if not events:
        return view
    view.first_version = events[0][2]
    view.stream_id = view.stream_id or events[0][1]
    view.last_version = events[-1][2]
    entries = view.entries
    model_calls = view.model_calls
    pending_call: ModelCall | None = None
    last_position = 0
    # Checks ordered by how often each type occurs: this loop runs for every event of a corpus.
    for position, _, _, _, data in events:
        if position > last_position:
            last_position = position
        if isinstance(data, ModelCall):
            model_calls.append(data)
            if data.role == "agent":
                pending_call = data
        elif isinstance(data, AgentMessage):
            entries.append(AgentStep(data, pending_call))
            pending_call = None
        elif isinstance(data, ToolCallFinished):
            entries.append(data)
        elif isinstance(data, UserTurn):
            if data.completed:
                view.closing = data
            else:
                entries.append(data)
        elif isinstance(data, FsDiff):
            view.diffs.setdefault(data.call_id, []).append(data)
        elif isinstance(data, ToolCallStarted):
            view.tool_starts[data.call_id] = data
        elif isinstance(data, SessionStarted):
            view.started = data
        elif isinstance(data, SessionEnded):
            view.ended = data
    view.last_position = last_position
    return view


def function_schemas(started: SessionStarted | None) -> list[dict[str, Any]]:
    """The agent's tools as OpenAI function schemas `{type: function, function: {...}}`,
    whether they were recorded wrapped or bare `{name, description, parameters}`."""
    if started is None:
        return []
    out: list[dict[str, Any]] = []
    for schema in started.tool_schemas:
        if isinstance(schema.get("function"), dict):
            out.append({"type": "function", "function": schema["function"]})
        else:
            out.append({"type": "function", "function": schema})
    return out
