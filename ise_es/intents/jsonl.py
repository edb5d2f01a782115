"""Intents JSONL in the reference schema (FORMATS.md section 4): import and export.

Import reads the whole file first and records nothing if any line is broken (unless
`skip_invalid`), so a bad file never leaves half of itself in the store. Accepted line shapes:
the reference record (`id`, `natural_language_intent`, ...), the same with `task_id` or
`intent_id` as the id (and `task_type`, kept as written), and a plain `{question, answer}` line,
which is a direct single query. Each intent is recorded on its own stream as IntentImported (the
record as written) + IntentRendered (renderer "import"); re-importing an id already in the store
is a no-op.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import ConcurrencyError, InvalidInput
from ise_es.events import Event, IntentImported, IntentRendered
from ise_es.intents.library import Library
from ise_es.intents.records import PoolCache, intent_stream, iter_intents, reference_record
from ise_es.outputs import atomic_output
from ise_es.store.base import EventStore

__all__ = [
    "ExportReport",
    "ImportReport",
    "ParsedIntent",
    "export_intents",
    "import_intents",
    "intent_records_by_id",
    "is_query_only",
    "parse_intents_file",
]

COMPLEXITIES = ("simple", "medium", "complex")
_ID_KEYS = ("id", "intent_id", "task_id")
QUERY_KEYS = ("query", "question")
"""A line with one of these and no natural_language_intent is query-only: its text goes to the
agent as is, with no user simulator (FORMATS.md section 4)."""


def is_query_only(record: dict[str, Any]) -> bool:
    return "natural_language_intent" not in record and any(k in record for k in QUERY_KEYS)


@dataclass(frozen=True)
class ParsedIntent:
    intent_id: str
    text: str
    record: dict[str, Any]
    line: int


def _string_list(record: dict[str, Any], key: str) -> None:
    value = record.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {key!r}: a list of strings is required")


def _parse_line(obj: object) -> tuple[str, str, dict[str, Any]]:
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON object is required, got {type(obj).__name__}")
    record: dict[str, Any] = dict(obj)
    text_key = next((k for k in QUERY_KEYS if k in record), None)
    if "natural_language_intent" not in record and text_key is not None:
        question = record[text_key]
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"field {text_key!r}: a non-empty string is required")
        ids = [record[k] for k in _ID_KEYS if k in record]
        intent_id = (
            str(ids[0]) if ids else "q_" + hashlib.sha256(question.encode()).hexdigest()[:12]
        )
        return intent_id, question, record
    text = record.get("natural_language_intent")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "field 'natural_language_intent': a non-empty string is required "
            "(or a query-only {query} / {question, answer} line)"
        )
    id_key = next((k for k in _ID_KEYS if k in record), None)
    if id_key is None:
        raise ValueError("no id: one of 'id', 'intent_id', 'task_id' is required")
    intent_id = record[id_key]
    if not isinstance(intent_id, str | int) or isinstance(intent_id, bool) or not str(intent_id):
        raise ValueError(f"field {id_key!r}: a non-empty string is required")
    for key in ("domains", "tasks", "tools_used", "skills_used"):
        _string_list(record, key)
    complexity = record.get("complexity")
    if complexity is not None and complexity not in COMPLEXITIES:
        raise ValueError(f"field 'complexity': {complexity!r} is not one of {COMPLEXITIES}")
    if "metadata" in record and not isinstance(record["metadata"], dict):
        raise ValueError("field 'metadata': an object is required")
    return str(intent_id), text, record


@dataclass
class ImportReport:
    recorded: int = 0
    already_present: int = 0
    invalid: list[str] = field(default_factory=list)


def parse_intents_file(
    path: Path, *, skip_invalid: bool = False
) -> tuple[list[ParsedIntent], list[str]]:
    """Parse and validate every line.

    Returns:
        (intents, problems): problems are `FILE:LINE: message`, only when `skip_invalid`.

    Raises:
        InvalidInput: the file cannot be read, or (without `skip_invalid`) a line is broken or
            repeats an id; the message names file and line.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read: {e.strerror}") from e
    parsed: list[ParsedIntent] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            try:
                obj = msgspec.json.decode(line)
            except msgspec.DecodeError as e:
                raise ValueError(f"not valid JSON: {e}") from e
            intent_id, text, record = _parse_line(obj)
            if intent_id in first_line:
                raise ValueError(
                    f"duplicate id {intent_id!r} (first on line {first_line[intent_id]})"
                )
        except ValueError as e:
            message = f"{path}:{n}: {e}"
            if not skip_invalid:
                raise InvalidInput(
                    message + " (nothing was imported; --skip-invalid to go on)"
                ) from e
            problems.append(message)
            continue
        first_line[intent_id] = n
        parsed.append(ParsedIntent(intent_id=intent_id, text=text, record=record, line=n))
    return parsed, problems


def import_intents(
    store: EventStore,
    path: Path,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Record every intent of a reference-schema JSONL file (see the module docstring)."""
    parsed, problems = parse_intents_file(path, skip_invalid=skip_invalid)
    report = ImportReport(invalid=problems)
    for i, item in enumerate(parsed, 1):
        events: list[Event] = [
            IntentImported(
                intent_id=item.intent_id,
                record=item.record,
                source_file=path.name,
                source_line=item.line,
            ),
            IntentRendered(
                intent_id=item.intent_id,
                text=item.text,
                renderer="import",
                text_digest=hashlib.sha256(item.text.encode()).hexdigest(),
            ),
        ]
        try:
            store.append(intent_stream(item.intent_id), events, expected_version=0)
            report.recorded += 1
        except ConcurrencyError:
            report.already_present += 1
        if progress is not None:
            progress(i, len(parsed))
    return report


@dataclass
class ExportReport:
    written: int = 0
    skipped_rejected: int = 0
    path: str = ""


def export_intents(
    store: EventStore,
    out: Path,
    library: Library,
    *,
    include_rejected: bool = False,
) -> ExportReport:
    """Write accepted intents (and rejected ones on request) as reference-schema JSONL.

    The file appears complete or not at all (written to a temporary file, then renamed); `-`
    writes to standard output. See `ise_es.outputs` for what a target may be.

    Raises:
        OutputError: the output cannot or must not be written.
    """
    pools = PoolCache(store)
    encoder = msgspec.json.Encoder()
    report = ExportReport(path=str(out))
    with atomic_output(out) as fh:
        for rec in iter_intents(store):
            if rec.status == "pending":
                continue
            if rec.status == "rejected" and not include_rejected:
                report.skipped_rejected += 1
                continue
            fh.write(encoder.encode(reference_record(rec, library, pools)))
            fh.write(b"\n")
            report.written += 1
    return report


def intent_records_by_id(path: str | Path) -> dict[str, dict[str, Any]]:
    """Reference-schema intent records by id (broken lines fail, naming file and line): what
    `import openclaw --intents FILE` attaches to the sessions it imports.

    Raises:
        InvalidInput: the file cannot be read or a line is broken.
    """
    parsed, _ = parse_intents_file(Path(path))
    return {
        p.intent_id: {**p.record, "id": p.intent_id, "natural_language_intent": p.text}
        for p in parsed
    }
