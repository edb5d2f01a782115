"""`ise-es import atif`: ATIF trajectories (one JSON object per file) into session streams.

One file is one session stream, appended in one call (whole or not at all); event ids derive
from the file's sha256, so importing a file again is a no-op, and a different file claiming an
imported session id is refused (`importing.append_session`).

The tool calls never ran in an ise-es sandbox, and the session says so: `sandbox_backend` is
`atif` (replay refuses it unless given a sandbox), provenance has `imported: true` and
`executed_by_ise_es: false`, and every result's `details` has `executed_by_ise_es: false`.

Steps -> events: the first system step is the system prompt; a user step is a UserTurn (the
closing turn when `extra.ise_es.completed`); an agent step is a ModelCall (when it has metrics
or a model name), an AgentMessage, and for each result answering one of its calls a
ToolCallStarted + ToolCallFinished. What the events cannot hold is kept in the SessionStarted's
`provenance.atif`: the root fields (`session_id`, `agent`, `notes`, `final_metrics`, `extra`),
per step the leftover fields (timestamp, foreign extras and metrics, results that answer no
call), and whole system steps after the first. `project atif` writes those back, which is what
makes export -> import -> export an identity.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import InvalidInput
from ise_es.events import (
    AgentMessage,
    Event,
    ModelCall,
    ModelSpec,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UserTurn,
)
from ise_es.projections.atif import IMPORTER, NOT_EXECUTED, STEP_KEYS, canonical_arguments
from ise_es.projections.folder import MANIFEST
from ise_es.projections.importing import (
    ENDED_STATUSES,
    FileResult,
    ParsedSession,
    derived_id,
    import_files,
    input_files,
    read_source,
)
from ise_es.store.base import EventStore, NewEvent

__all__ = ["atif_files", "import_atif", "parse_atif"]

_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_USER_KEYS = {"step_id", "source", "message", "extra"}
_AGENT_KEYS = set(STEP_KEYS) - {"timestamp"}
"""An agent step's fields the events hold (its timestamp is kept aside, as a leftover)."""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class _Mapper:
    def __init__(self, where: str, digest: str, doc: dict[str, Any]) -> None:
        self.where = where
        self.digest = digest
        self.doc = doc
        self.events: list[Event] = []
        self.leftovers: dict[str, dict[str, Any]] = {}
        self.system_steps: dict[str, dict[str, Any]] = {}
        self.system_prompt = ""
        self.first_user: str | None = None
        self.turn = self.step = self.calls = 0

    def fail(self, step_id: Any, message: str) -> InvalidInput:
        return InvalidInput(f"{self.where}: step {step_id}: {message}")

    def keep(self, step: dict[str, Any], mapped: set[str]) -> dict[str, Any]:
        """Record the step's fields the events will not hold; return its `extra.ise_es`."""
        left = {k: v for k, v in step.items() if k not in mapped}
        extra = _dict(step.get("extra"))
        foreign = {k: v for k, v in extra.items() if k != "ise_es"}
        if foreign:
            left["extra"] = foreign
        if left:
            self.leftovers[str(step["step_id"])] = left
        return _dict(extra.get("ise_es"))

    def step_of(self, index: int, step: Any) -> None:
        if not isinstance(step, dict):
            raise self.fail(index + 1, "a step must be an object")
        step_id, source, message = step.get("step_id"), step.get("source"), step.get("message")
        if step_id != index + 1:
            raise self.fail(step_id, f"step_id must be {index + 1} (1-based, in order)")
        if not isinstance(message, str):
            raise self.fail(step_id, "message must be a string")
        if source == "system":
            self.system(index, step)
        elif source == "user":
            self.user(step)
        elif source == "agent":
            self.agent(step)
        else:
            raise self.fail(step_id, f"source must be system, user or agent, not {source!r}")

    def system(self, index: int, step: dict[str, Any]) -> None:
        ise = _dict(_dict(step.get("extra")).get("ise_es"))
        orphan = ise.get("orphan_result")
        if index == 0 and "observation" not in step:
            self.system_prompt = step["message"]
            self.keep(step, {"step_id", "source", "message", "extra"})
        elif isinstance(orphan, dict) and isinstance(orphan.get("call_id"), str):
            results = _dict(step.get("observation")).get("results") or [{}]
            content = _dict(results[0]).get("content", "")
            self.finished(orphan["call_id"], str(content), orphan)
            self.keep(step, {"step_id", "source", "message", "observation", "extra"})
        else:
            self.system_steps[str(step["step_id"])] = step

    def user(self, step: dict[str, Any]) -> None:
        ise = self.keep(step, _USER_KEYS)
        completed = ise.get("completed") is True
        turn = _int(ise.get("turn")) or (self.turn if completed else self.turn + 1)
        if not completed:
            self.turn, self.step = turn, 0
            if self.first_user is None:
                self.first_user = step["message"]
        self.events.append(
            UserTurn(
                turn=turn,
                text=step["message"],
                completed=completed,
                reason=str(ise.get("reason", "")),
                raw=str(ise.get("raw", "")),
            )
        )

    def agent(self, step: dict[str, Any]) -> None:
        step_id = step["step_id"]
        ise = self.keep(step, _AGENT_KEYS)
        raw_arguments = _dict(ise.get("raw_arguments"))
        calls: list[ToolCall] = []
        for call in step.get("tool_calls") or []:
            call = _dict(call)
            call_id, name = call.get("tool_call_id"), call.get("function_name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise self.fail(step_id, "a tool call needs string tool_call_id, function_name")
            arguments = call.get("arguments")
            if not isinstance(arguments, dict):
                raise self.fail(step_id, f"arguments of {call_id} must be an object")
            text = raw_arguments.get(call_id)
            calls.append(
                ToolCall(
                    id=call_id,
                    name=name,
                    arguments=text if isinstance(text, str) else canonical_arguments(arguments),
                )
            )
        if "metrics" in step or "model_name" in step:
            self.events.append(self.model_call(step, ise))
        turn = _int(ise.get("turn")) if "turn" in ise else self.turn
        index = _int(ise.get("step")) if "step" in ise else self.step
        reasoning = step.get("reasoning_content")
        self.events.append(
            AgentMessage(
                turn=turn,
                step=index,
                text=step["message"],
                reasoning=reasoning if isinstance(reasoning, str) else None,
                tool_calls=calls,
            )
        )
        self.step = index + 1
        self.results(step, calls, turn, index, _dict(ise.get("results")))

    def model_call(self, step: dict[str, Any], ise: dict[str, Any]) -> ModelCall:
        metrics = _dict(step.get("metrics"))
        extra = _dict(metrics.get("extra"))
        prompt, completion = (
            _int(metrics.get("prompt_tokens")),
            _int(metrics.get("completion_tokens")),
        )
        left_metrics = {
            k: v
            for k, v in metrics.items()
            if k not in ("prompt_tokens", "completion_tokens", "extra")
        }
        left_extra = {
            k: v for k, v in extra.items() if k not in ("total_tokens", "reasoning_tokens")
        }
        if left_extra:
            left_metrics["extra"] = left_extra
        if left_metrics:
            self.leftovers.setdefault(str(step["step_id"]), {})["metrics"] = left_metrics
        reasoning = extra.get("reasoning_tokens")
        call = _dict(ise.get("model_call"))
        effort = step.get("reasoning_effort")
        agent = _dict(self.doc.get("agent"))
        latency = call.get("latency_ms")
        return ModelCall(
            role="agent",
            model=str(step.get("model_name") or agent.get("model_name") or ""),
            backend=str(call.get("backend") or "atif"),
            parameters={"reasoning_effort": effort} if effort is not None else {},
            finish_reason=call.get("finish_reason")
            if isinstance(call.get("finish_reason"), str)
            else None,
            usage=Usage(
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=_int(extra.get("total_tokens")) or prompt + completion,
                reasoning_tokens=reasoning if isinstance(reasoning, int) else None,
            ),
            latency_ms=float(latency) if isinstance(latency, int | float) else 0.0,
        )

    def results(
        self,
        step: dict[str, Any],
        calls: list[ToolCall],
        turn: int,
        index: int,
        metas: dict[str, Any],
    ) -> None:
        by_id = {c.id: c for c in calls}
        unmatched: list[Any] = []
        for result in _dict(step.get("observation")).get("results") or []:
            call = by_id.get(_dict(result).get("source_call_id"))  # type: ignore[arg-type]
            if call is None:
                unmatched.append(result)
                continue
            self.events.append(
                ToolCallStarted(
                    call_id=call.id,
                    tool=call.name,
                    arguments=call.arguments,
                    turn=turn,
                    step=index,
                    index=self.calls,
                )
            )
            self.calls += 1
            self.finished(
                call.id, str(result.get("content", "")), _dict(metas.get(call.id)), call.name
            )
        if unmatched:
            self.leftovers.setdefault(str(step["step_id"]), {})["observation_results"] = unmatched

    def finished(self, call_id: str, text: str, meta: dict[str, Any], tool: str = "") -> None:
        fields = {k: v for k, v in meta.items() if k not in ("call_id", "result_text", "type")}
        fields["details"] = {**_dict(fields.get("details")), NOT_EXECUTED: False}
        fields.setdefault("tool", tool)
        try:
            event = msgspec.convert(
                {"call_id": call_id, "result_text": text, **fields}, ToolCallFinished
            )
        except msgspec.ValidationError as e:
            raise InvalidInput(f"{self.where}: result of {call_id}: {e}") from e
        self.events.append(event)


def _started(mapper: _Mapper, session_id: str, path: Path) -> SessionStarted:
    doc = mapper.doc
    agent = _dict(doc.get("agent"))
    ise = _dict(_dict(doc.get("extra")).get("ise_es"))
    agent_extra = _dict(agent.get("extra"))
    given = ise.get("intent")
    intent = given if isinstance(given, str) else (mapper.first_user or "")
    try:
        models = msgspec.convert(agent_extra.get("models") or [], list[ModelSpec])
    except msgspec.ValidationError:
        models = []
    if not models and isinstance(agent.get("model_name"), str):
        models = [ModelSpec(role="agent", backend="atif", model=agent["model_name"])]
    tools = agent_extra.get("tools")
    kept: dict[str, Any] = {
        k: doc[k] for k in ("session_id", "agent", "notes", "final_metrics", "extra") if k in doc
    }
    kept["schema_version"] = doc.get("schema_version")
    kept["steps"] = mapper.leftovers
    if mapper.system_steps:
        kept["system_steps"] = mapper.system_steps
    return SessionStarted(
        session_id=session_id,
        intent_id=str(ise.get("intent_id") or f"atif_{session_id[:16]}"),
        intent=intent,
        intent_record=_dict(ise.get("intent_record"))
        or {"source": "atif", "natural_language_intent": intent},
        persona=ise.get("persona") if isinstance(ise.get("persona"), dict) else None,
        models=models,
        system_prompt=mapper.system_prompt,
        tool_schemas=[t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else [],
        sandbox_backend="atif",
        provenance={
            "imported": True,
            "importer": IMPORTER,
            NOT_EXECUTED: False,
            "source_file": path.name,
            "source_digest": mapper.digest,
            "agent": f"{agent.get('name')} {agent.get('version')}",
            "atif": kept,
        },
    )


def parse_atif(path: str | Path) -> ParsedSession:
    """Parse one ATIF file into the events of its session stream.

    Raises:
        InvalidInput: unreadable, not JSON, or not an ATIF trajectory (file and step named).
    """
    p = Path(path)
    data = read_source(p)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{p}: not JSON ({e})") from e
    if not isinstance(doc, dict) or not str(doc.get("schema_version", "")).startswith("ATIF-v1."):
        raise InvalidInput(f"{p}: not an ATIF v1 trajectory (schema_version ATIF-v1.x)")
    original = doc.get("session_id")
    agent = doc.get("agent")
    if not isinstance(original, str) or not original:
        raise InvalidInput(f"{p}: session_id must be a non-empty string")
    if not isinstance(agent, dict) or not all(
        isinstance(agent.get(k), str) for k in ("name", "version")
    ):
        raise InvalidInput(f"{p}: agent needs string name and version")
    steps = doc.get("steps")
    if not isinstance(steps, list):
        raise InvalidInput(f"{p}: steps must be an array")
    digest = hashlib.sha256(data).hexdigest()
    mapper = _Mapper(str(p), digest, doc)
    for index, step in enumerate(steps):
        mapper.step_of(index, step)
    session_id = (
        original
        if _SAFE_ID.fullmatch(original)
        else hashlib.sha256(original.encode()).hexdigest()[:32]
    )
    ise = _dict(_dict(doc.get("extra")).get("ise_es"))
    status = ise.get("status") if ise.get("status") in ENDED_STATUSES else "completed"
    ended = SessionEnded(
        status=status,  # type: ignore[arg-type]
        reason=str(ise.get("reason") or f"imported from ATIF ({agent['name']})"),
        user_turns=mapper.turn,
        tool_calls=mapper.calls,
    )
    events = [_started(mapper, session_id, p), *mapper.events, ended]
    return ParsedSession.of(
        session_id,
        str(p),
        digest,
        [NewEvent(e, event_id=derived_id("atif", digest, i)) for i, e in enumerate(events)],
        user_turns=mapper.turn,
        tool_calls=mapper.calls,
    )


def atif_files(paths: Iterable[str | Path]) -> list[Path]:
    """ATIF files: those named, and every *.json under directories named (not our
    manifest.json)."""
    return input_files(paths, (".json",), exclude=(MANIFEST,))


def import_atif(store: EventStore, paths: Iterable[str | Path]) -> list[FileResult]:
    """Import each file as one session; a bad file is reported and the others go on."""
    return import_files(store, atif_files(paths), lambda path: [parse_atif(path)])
