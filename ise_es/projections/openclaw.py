"""`ise-es import openclaw`: OpenClaw session JSONL files into session streams.

One file is one session stream (`session-<header uuid, hex>`), appended in ONE call, so a file
is imported whole or not at all: every line is parsed and mapped before anything is written,
and a line that does not parse is reported with file and line (`skip_invalid` leaves such
lines out instead, e.g. the cut-off last line of a file copied while the agent still wrote,
and reports them). Event ids are derived from the file's sha256 and the line number, so
importing the same file again is a no-op; a different file claiming an already imported
session is refused (the log is append-only).

Mapping (the reference converter's known losses are not repeated):
- user message -> UserTurn; the client envelope (`[Thu 2026-03-26 21:29 GMT+8] `) is stripped.
- assistant message -> ModelCall(role=agent: usage, latency, and the content blocks in their
  original order under `response`) + AgentMessage (text, reasoning from thinking blocks, tool
  calls). Messages holding only thinking are kept.
- toolResult -> ToolCallStarted + ToolCallFinished; the outcome follows FAILURE_RULE
  (`isError` AND `details` AND an `{"error": ...}` result text): `is_error` is that derived
  outcome and `details` is the original plus the raw `isError`.
- session header, model/thinking-level changes and custom entries -> SessionStarted
  (provenance: file name, digest, cwd, ...). The file records no tool schemas, so `tools`
  (the agent's real schemas, e.g. its runtime catalogue) are attached when given; otherwise
  each tool the agent used gets a schema inferred from the arguments seen (types, and the
  keys present in every call as required), and `provenance.tool_schemas_source` says which.
  Tools the agent never called are then unknown, and never invented.
- `intents` (reference-schema records by id) attach the intent, persona, domains, tasks and
  complexity to a session whose file name carries the intent id, as the reference names
  them: `intent_<id>__<worker>__<uuid>.jsonl`.
- The header's timestamp and the last entry's become `SessionStarted.started_at` and
  `SessionEnded.ended_at`, so the session shows when it really ran, not when it was imported.
- The session ends `completed`: the reference archived only finished sessions.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ise_es.errors import InvalidInput
from ise_es.events import ModelSpec, SessionEnded, SessionStarted
from ise_es.projections.importing import (
    FileResult,
    ParsedSession,
    append_session,
    import_files,
    input_files,
    read_source,
)
from ise_es.projections.openclawentries import (
    ENVELOPE,
    EntryMapper,
    epoch_ms,
    event_id,
    strip_envelope,
)
from ise_es.projections.toolschemas import (
    infer_tool_schemas,
    load_tool_schemas,
    reference_tool_schemas,
)
from ise_es.store.base import EventStore, NewEvent

# the importers' shared pieces are re-exported: `import openclaw` was their first home
__all__ = [
    "ENVELOPE",
    "FileResult",
    "ParsedSession",
    "append_session",
    "import_openclaw",
    "infer_tool_schemas",
    "input_files",
    "intent_id_from_name",
    "load_tool_schemas",
    "openclaw_files",
    "parse_openclaw",
    "reference_tool_schemas",
    "strip_envelope",
]

IMPORTER = "ise-es import openclaw"


def intent_id_from_name(name: str, known: Iterable[str] = ()) -> str | None:
    """The intent id in a reference session file name, `intent_<id>__<worker>__<uuid>.jsonl`
    (`intent_58f206b3` or `58f206b3`, whichever `known` holds); None without that shape."""
    stem = name.removesuffix(".jsonl")
    head, sep, _ = stem.partition("__")
    if not sep or not head.startswith("intent_"):
        return None
    ids = set(known)
    for candidate in (head, head.removeprefix("intent_")):
        if candidate in ids:
            return candidate
    return head


def _parse_lines(
    data: bytes, mapper: EntryMapper, skip_invalid: bool, skipped: list[str]
) -> tuple[dict[str, Any] | None, int]:
    header: dict[str, Any] | None = None
    last_line = 0
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        last_line = number
        try:
            entry = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            if skip_invalid:
                skipped.append(f"{mapper.path}:{number}: not a JSON object ({e})")
                continue
            raise mapper.fail(number, f"not a JSON object ({e}); --skip-invalid to go on") from e
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            raise mapper.fail(number, "an entry must be a JSON object with a string 'type'")
        if header is None:
            if entry["type"] != "session":
                raise mapper.fail(number, "the first entry must be the session header")
            header = entry
            continue
        if entry["type"] == "session":
            raise mapper.fail(number, "a second session header")
        mapper.entry(number, entry)
    return header, last_line


def _models(mapper: EntryMapper) -> list[ModelSpec]:
    """The models the messages name, else the first model change's."""
    return [ModelSpec(role="agent", backend="openclaw", model=m) for m in mapper.models] or [
        ModelSpec(role="agent", backend="openclaw", model=str(c.get("modelId")))
        for c in mapper.model_changes[:1]
    ]


def _tool_schemas(
    tools: list[dict[str, Any]] | None, mapper: EntryMapper
) -> tuple[list[dict[str, Any]], str]:
    """The schemas the session gets, and where they came from (provenance says)."""
    if tools is not None:
        return tools, "given (import openclaw --tools)"
    return infer_tool_schemas(mapper.arguments), (
        f"inferred from the arguments of {mapper.n_calls} observed calls (no --tools "
        "file): only the tools the agent used, without descriptions"
    )


def _provenance(
    p: Path,
    header: dict[str, Any],
    mapper: EntryMapper,
    schema_source: str,
    intent_given: bool,
    skipped: list[str],
) -> dict[str, Any]:
    return {
        "imported": True,
        "importer": IMPORTER,
        "source_file": p.name,
        "source_digest": mapper.digest,
        "format_version": header.get("version"),
        "session_uuid": str(header.get("id")),
        "started_at": header.get("timestamp"),
        "cwd": header.get("cwd"),
        "model_changes": mapper.model_changes,
        "thinking_levels": mapper.thinking_levels,
        "custom_entries": dict(mapper.custom),
        "ignored_entries": dict(mapper.ignored),
        "tool_schemas_source": schema_source,
        "intent_source": "import openclaw --intents" if intent_given else "first user message",
        "skipped_lines": skipped,
    }


def _session_started(
    p: Path,
    session_id: str,
    header: dict[str, Any],
    mapper: EntryMapper,
    record: dict[str, Any] | None,
    intent_id: str | None,
    tools: list[dict[str, Any]] | None,
    skipped: list[str],
) -> SessionStarted:
    """The session's start: its intent (the record given for it, else the first user
    message), models, tool schemas and where everything came from."""
    first_user = mapper.first_user or ""
    schemas, schema_source = _tool_schemas(tools, mapper)
    metadata = record.get("metadata") if record else None
    persona = metadata.get("persona") if isinstance(metadata, dict) else None
    header_time = epoch_ms(header.get("timestamp"))
    return SessionStarted(
        session_id=session_id,
        intent_id=(record or {}).get("id") or intent_id or f"openclaw_{session_id[:16]}",
        intent=str(record["natural_language_intent"]) if record else first_user,
        intent_record={"source": "openclaw", **record}
        if record
        else {"source": "openclaw", "natural_language_intent": first_user},
        persona=persona if isinstance(persona, dict) else None,
        models=_models(mapper),
        tool_schemas=schemas,
        sandbox_backend="openclaw",
        provenance=_provenance(p, header, mapper, schema_source, record is not None, skipped),
        started_at=header_time / 1000 if header_time is not None else None,
    )


def parse_openclaw(
    path: str | Path,
    *,
    tools: list[dict[str, Any]] | None = None,
    intents: dict[str, dict[str, Any]] | None = None,
    skip_invalid: bool = False,
) -> ParsedSession:
    """Parse one OpenClaw session file into the events of its session stream.

    Raises:
        InvalidInput: unreadable file, or a line that does not parse (file and line named).
    """
    p = Path(path)
    data = read_source(p)
    digest = hashlib.sha256(data).hexdigest()
    mapper = EntryMapper(p, digest)
    skipped: list[str] = []
    header, last_line = _parse_lines(data, mapper, skip_invalid, skipped)
    if header is None:
        raise InvalidInput(f"{p}: empty file (no session header)")
    try:
        session_id = uuid.UUID(str(header.get("id"))).hex
    except ValueError as e:
        raise mapper.fail(1, f"session id {header.get('id')!r} is not a UUID") from e
    intent_id = intent_id_from_name(p.name, intents or {})
    record = (intents or {}).get(intent_id or "")
    started = _session_started(p, session_id, header, mapper, record, intent_id, tools, skipped)
    ended = SessionEnded(
        status="completed",
        reason="imported from OpenClaw; the reference archived only finished sessions",
        user_turns=mapper.turn,
        tool_calls=mapper.n_calls,
        ended_at=mapper.last_time,
    )
    events = [
        NewEvent(started, event_id=event_id(digest, 1, 0)),
        *mapper.events,
        NewEvent(ended, event_id=event_id(digest, last_line + 1, 0)),
    ]
    return ParsedSession.of(
        session_id,
        str(p),
        digest,
        events,
        user_turns=mapper.turn,
        tool_calls=mapper.n_calls,
        skipped=skipped,
        intent_attached=record is not None,
    )


def openclaw_files(paths: Iterable[str | Path]) -> list[Path]:
    """OpenClaw session files: those named, and every *.jsonl under directories named."""
    return input_files(paths, (".jsonl",))


def import_openclaw(
    store: EventStore,
    paths: Iterable[str | Path],
    *,
    tools: list[dict[str, Any]] | None = None,
    intents: dict[str, dict[str, Any]] | None = None,
    skip_invalid: bool = False,
) -> list[FileResult]:
    """Import each file as one session; a bad file is reported and the others go on."""
    return import_files(
        store,
        openclaw_files(paths),
        lambda path: [
            parse_openclaw(path, tools=tools, intents=intents, skip_invalid=skip_invalid)
        ],
    )
