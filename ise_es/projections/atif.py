"""Sessions as ATIF trajectories (Agent Trajectory Interchange Format, RFC 0001, v1.4).

`project atif` writes one JSON object per session; `import atif` (`atif_import.py`) reads
them back. Our schema of the format is `schemas/atif-v1.4.schema.json`.

Mapping (a session -> a trajectory):
- root: `session_id`; `agent` = ise-es and its version, the agent role's model, and under
  `agent.extra` the tool schemas the agent saw (`tools`) and every role's model (`models`);
  `final_metrics` sums the agent's usage; `extra.ise_es` holds what a trajectory has no field
  for (intent, persona, status, sandbox, template digest, seeds, provenance).
- steps, in log order: the system prompt (source `system`); each user turn (`user`; the
  simulator's closing turn too, marked `extra.ise_es.completed`); each agent message
  (`agent`: text, `reasoning_content`, `tool_calls` with arguments as objects, `observation`
  with each call's result text exactly as the agent saw it, `metrics` from the ModelCall's
  usage, `model_name`). `extra.ise_es` of an agent step keeps turn and step numbers, the
  model call's latency and finish reason, the argument text where it is not the canonical
  JSON of the object (a malformed call keeps `{}` as arguments and its text here), and per
  call the result's exit code, error flags, duration and details. Timestamps are the events'.
- a result whose call no message made (an orphan) becomes a system step with an observation.
- The user simulator's model calls have no place in ATIF (metrics are the agent's): they are
  left out, and `notes` says so.

A session that was itself imported from ATIF is written back from what the import kept: the
original root fields (`agent`, `notes`, `final_metrics`, `extra`, `session_id`) and, per step,
the fields the events do not hold (timestamps, foreign extras, metrics such as cost or
logprobs). So `import atif` of our own export, exported again, gives identical files.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import ConfigError
from ise_es.events import ModelCall, SessionStarted, ToolCallFinished, UserTurn
from ise_es.projections.export import STATUSES
from ise_es.projections.folder import (
    MANIFEST,
    current_manifest,
    file_entry,
    ise_es_version,
    staged_folder,
)
from ise_es.projections.gather import gather_sessions
from ise_es.projections.session import AgentStep, SessionView, function_schemas
from ise_es.store.base import EventStore, StoredEvent

__all__ = [
    "ATIF_VERSION",
    "IMPORTER",
    "NOT_EXECUTED",
    "STEP_KEYS",
    "AtifReport",
    "export_atif",
    "trajectory",
    "write_trajectory",
]

ATIF_VERSION = "ATIF-v1.4"
IMPORTER = "ise-es import atif"
NOT_EXECUTED = "executed_by_ise_es"
"""The `details` key `import atif` sets to false on every result: ise-es did not run it."""
ROOT_KEYS = ("schema_version", "session_id", "agent", "steps", "notes", "final_metrics", "extra")
STEP_KEYS = (
    "step_id",
    "timestamp",
    "source",
    "model_name",
    "reasoning_effort",
    "message",
    "reasoning_content",
    "tool_calls",
    "observation",
    "metrics",
    "extra",
)
NOTES = (
    "Recorded by ise-es: every tool call ran in an ise-es sandbox and each observation is the "
    "result text the agent saw. The user simulator's model calls are not included (ATIF "
    "metrics are the agent's). ise-es specifics are under extra.ise_es."
)
_FINISHED_DEFAULTS = msgspec.structs.asdict(ToolCallFinished(call_id="", tool="", result_text=""))


def iso(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def ordered(obj: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """`obj` with `keys` first in that order, other keys after them, sorted."""
    out = {k: obj[k] for k in keys if k in obj}
    out.update({k: obj[k] for k in sorted(obj) if k not in out})
    return out


def arguments_object(text: str) -> tuple[dict[str, Any], str | None]:
    """ATIF arguments are an object: (the object, the text when it is not the canonical JSON
    of that object, so nothing the model emitted is lost)."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}, text
    if not isinstance(parsed, dict):
        return {}, text
    return parsed, (None if canonical_arguments(parsed) == text else text)


def canonical_arguments(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, ensure_ascii=False)


def _result_meta(finished: ToolCallFinished) -> dict[str, Any]:
    """The result's fields other than its text, where they differ from the defaults."""
    fields = msgspec.structs.asdict(finished)
    meta = {
        k: v
        for k, v in fields.items()
        if k not in ("call_id", "result_text") and v != _FINISHED_DEFAULTS[k]
    }
    details = dict(finished.details)
    details.pop(NOT_EXECUTED, None)  # the import's own mark, not part of the trajectory
    if details:
        meta["details"] = details
    else:
        meta.pop("details", None)
    return meta


class _Steps:
    """Builds the step list of one session."""

    def __init__(self, times: dict[int, float], imported: bool) -> None:
        self.steps: list[dict[str, Any]] = []
        self.by_call: dict[str, dict[str, Any]] = {}
        self.times = times
        self.imported = imported

    def add(self, step: dict[str, Any], event: object) -> dict[str, Any]:
        if not self.imported and id(event) in self.times:
            step["timestamp"] = iso(self.times[id(event)])
        self.steps.append(step)
        return step

    def user(self, turn: UserTurn) -> None:
        ise: dict[str, Any] = {"turn": turn.turn}
        if turn.completed:
            ise["completed"] = True
        if turn.reason:
            ise["reason"] = turn.reason
        if turn.raw:
            ise["raw"] = turn.raw
        self.add({"source": "user", "message": turn.text, "extra": {"ise_es": ise}}, turn)

    def agent(self, entry: AgentStep) -> None:
        message, call = entry.message, entry.model_call
        step: dict[str, Any] = {"source": "agent", "message": message.text}
        ise: dict[str, Any] = {"turn": message.turn, "step": message.step}
        if message.reasoning is not None:
            step["reasoning_content"] = message.reasoning
        if message.tool_calls:
            step["tool_calls"] = []
            raw: dict[str, str] = {}
            for c in message.tool_calls:
                arguments, text = arguments_object(c.arguments)
                step["tool_calls"].append(
                    {"tool_call_id": c.id, "function_name": c.name, "arguments": arguments}
                )
                if text is not None:
                    raw[c.id] = text
                self.by_call[c.id] = step
            if raw:
                ise["raw_arguments"] = raw
        if call is not None:
            self._metrics(step, ise, call)
        step["extra"] = {"ise_es": ise}
        self.add(step, message)

    @staticmethod
    def _metrics(step: dict[str, Any], ise: dict[str, Any], call: ModelCall) -> None:
        step["model_name"] = call.model
        effort = call.parameters.get("reasoning_effort")
        if isinstance(effort, str | int | float) and not isinstance(effort, bool):
            step["reasoning_effort"] = effort
        usage = call.usage
        metrics: dict[str, Any] = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
        }
        extra: dict[str, Any] = {"total_tokens": usage.total_tokens}
        if usage.reasoning_tokens is not None:
            extra["reasoning_tokens"] = usage.reasoning_tokens
        metrics["extra"] = extra
        step["metrics"] = metrics
        ise["model_call"] = {
            "backend": call.backend,
            "latency_ms": call.latency_ms,
            "finish_reason": call.finish_reason,
        }

    def result(self, finished: ToolCallFinished) -> None:
        step = self.by_call.get(finished.call_id)
        entry = {"source_call_id": finished.call_id, "content": finished.result_text}
        meta = _result_meta(finished)
        if step is None:  # an orphan: no message made this call
            ise = {"orphan_result": {"call_id": finished.call_id, **meta}}
            self.add(
                {
                    "source": "system",
                    "message": "",
                    "observation": {"results": [{"content": finished.result_text}]},
                    "extra": {"ise_es": ise},
                },
                finished,
            )
            return
        step.setdefault("observation", {"results": []})["results"].append(entry)
        step["extra"]["ise_es"].setdefault("results", {})[finished.call_id] = meta


def _kept(started: SessionStarted | None) -> dict[str, Any] | None:
    """What `import atif` kept of the original file (None: not imported from ATIF)."""
    if started is None or started.provenance.get("importer") != IMPORTER:
        return None
    kept = started.provenance.get("atif")
    return kept if isinstance(kept, dict) else None


def _merge(step: dict[str, Any], left: dict[str, Any]) -> None:
    """Put back a step's fields the events do not hold (foreign extras, metrics, ...)."""
    for key, value in left.items():
        if key in ("extra", "metrics") and isinstance(value, dict):
            step[key] = {**step.get(key, {}), **value}
        elif key == "observation_results":
            step.setdefault("observation", {"results": []})["results"].extend(value)
        else:
            step[key] = value


def _root(view: SessionView, steps: list[dict[str, Any]]) -> dict[str, Any]:
    started = view.started
    models = started.models if started else []
    agent_model = next((m.model for m in models if m.role == "agent"), None)
    agent: dict[str, Any] = {"name": "ise-es", "version": ise_es_version()}
    if agent_model is not None:
        agent["model_name"] = agent_model
    agent["extra"] = {
        "tools": function_schemas(started),
        "models": [msgspec.to_builtins(m) for m in models],
    }
    prompt = completion = 0
    for entry in view.entries:
        if isinstance(entry, AgentStep) and entry.model_call is not None:
            prompt += entry.model_call.usage.prompt_tokens
            completion += entry.model_call.usage.completion_tokens
    ended = view.ended
    ise: dict[str, Any] = {"stream_id": view.stream_id}
    if started is not None:
        fields = msgspec.structs.asdict(started)
        for key in ("system_prompt", "tool_schemas", "models", "session_id"):
            fields.pop(key)
        ise.update(msgspec.to_builtins(fields))
    ise["status"] = view.status
    ise["reason"] = ended.reason if ended else ""
    return {
        "schema_version": ATIF_VERSION,
        "session_id": view.session_id,
        "agent": agent,
        "steps": steps,
        "notes": NOTES,
        "final_metrics": {
            "total_prompt_tokens": prompt,
            "total_completion_tokens": completion,
            "total_steps": len(steps),
            "extra": {"tool_calls": view.tool_call_count()},
        },
        "extra": {"ise_es": ise},
    }


def trajectory(view: SessionView, events: list[StoredEvent]) -> dict[str, Any]:
    """One session as an ATIF v1.4 trajectory; see the module docstring."""
    kept = _kept(view.started)
    times = {id(e.data): e.recorded_at for e in events}
    builder = _Steps(times, imported=kept is not None)
    started = view.started
    if started is not None and started.system_prompt:
        builder.add({"source": "system", "message": started.system_prompt}, started)
    for entry in view.entries:
        if isinstance(entry, UserTurn):
            builder.user(entry)
        elif isinstance(entry, AgentStep):
            builder.agent(entry)
        else:
            builder.result(entry)
    if view.closing is not None:
        builder.user(view.closing)
    steps = builder.steps
    if kept is not None:
        for position, whole in sorted(
            kept.get("system_steps", {}).items(), key=lambda kv: int(kv[0])
        ):
            steps.insert(int(position) - 1, dict(whole))
    for number, step in enumerate(steps, start=1):
        step["step_id"] = number
        if kept is not None:
            _merge(step, kept.get("steps", {}).get(str(number), {}))
    steps[:] = [ordered(s, STEP_KEYS) for s in steps]
    root = _root(view, steps)
    if kept is not None:
        root["session_id"] = kept.get("session_id", root["session_id"])
        for key in ("agent", "notes", "final_metrics", "extra"):
            if key in kept:
                root[key] = kept[key]
            else:
                root.pop(key, None)
    return ordered(root, ROOT_KEYS)


def write_trajectory(directory: Path, document: dict[str, Any], session_id: str) -> Path:
    """`DIR/<session id>.json` (pretty-printed, UTF-8, keys in ATIF's order). Named by the
    store's session id, which is unique and file-name safe (an imported document's own
    `session_id` may be neither)."""
    path = directory / f"{session_id}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
    return path


class AtifReport(msgspec.Struct, kw_only=True):
    folder: str
    files: int = 0
    sessions_considered: int = 0
    skipped: dict[str, int] = {}
    position: int = 0
    up_to_date: bool = False
    seconds: float = 0.0


def _write_trajectories(
    store: EventStore, stage: Path, status: str, report: AtifReport, max_buffered: int
) -> list[dict[str, Any]]:
    """One file per ended session `status` keeps, in one catch-up read; the report counts
    what was considered and skipped. The manifest's lines of the files, by name."""
    written: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()

    def session(view: SessionView, events: list[StoredEvent]) -> None:
        if view.status is None:
            return
        report.sessions_considered += 1
        if status != "any" and view.status != status:
            skipped[f"status {view.status}"] += 1
            return
        path = write_trajectory(stage, trajectory(view, events), view.session_id)
        written.append(file_entry(stage, path.name))

    report.position = gather_sessions(store, session, max_buffered=max_buffered)
    written.sort(key=lambda f: f["path"])
    report.files = len(written)
    report.skipped = dict(sorted(skipped.items()))
    return written


def _write_manifest(
    stage: Path, status: str, digest: str, position: int, written: list[dict[str, Any]]
) -> None:
    manifest_doc = {
        "format": "ise-es atif manifest 1",
        "ise_es_version": ise_es_version(),
        "schema_version": ATIF_VERSION,
        "store": {"position": position},
        "options": {"status": status},
        "options_digest": digest,
        "files": written,
    }
    (stage / MANIFEST).write_text(json.dumps(manifest_doc, indent=2) + "\n")


def export_atif(
    store: EventStore,
    output: str | Path,
    *,
    status: str = "completed",
    force: bool = False,
    max_buffered: int = 500_000,
) -> AtifReport:
    """Write one ATIF file per ended session kept by `status` into the folder `output`
    (built aside and swapped in, with a manifest; a rerun with no session ended since is a
    no-op while the files are as the manifest lists them).

    Raises:
        ConfigError: a bad status, or an `output` that is not a folder we may replace.
    """
    started = time.perf_counter()
    if status not in STATUSES:
        raise ConfigError(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    target = Path(output).absolute()
    digest = hashlib.sha256(f"atif:{ATIF_VERSION}:{status}".encode()).hexdigest()
    manifest = None if force else current_manifest(store, target, digest, ("session_ended",))
    if manifest is not None:
        return AtifReport(
            folder=str(target),
            files=len(manifest["files"]),
            position=manifest["store"]["position"],
            up_to_date=True,
            seconds=time.perf_counter() - started,
        )
    report = AtifReport(folder=str(target))
    with staged_folder(target) as stage:
        written = _write_trajectories(store, stage, status, report, max_buffered)
        _write_manifest(stage, status, digest, report.position, written)
    report.seconds = time.perf_counter() - started
    return report
