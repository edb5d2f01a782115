"""Golden outputs of the export and import formats: the exact bytes each one writes today.

Every format is rendered for a fixed set of sessions and options and compared, as text, with a
file under tests/projections/golden/: key order, whitespace and values all count, so a refactor
of formats.py, openclaw.py, middle.py, atif.py, atif_import.py or hfdataset.py that changes one
byte of any output fails here. The store-backed exports (ATIF folder, hf-dataset folder) run on
both databases with a fixed clock, so their files are the same everywhere.

After an intended change of output, regenerate with `ISE_ES_UPDATE_GOLDEN=1 pytest
tests/projections/test_golden.py` and review the diff of golden/ like code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
import pytest

from ise_es.events import SessionStarted, ToolCallFinished, UserTurn
from ise_es.intents.jsonl import intent_records_by_id
from ise_es.projections.atif import export_atif, trajectory, write_trajectory
from ise_es.projections.atif_import import parse_atif
from ise_es.projections.export import ExportOptions
from ise_es.projections.formats import Unrepresentable, render, resolve_options
from ise_es.projections.hfdataset import HfOptions, export_hf_dataset
from ise_es.projections.middle import parse_middle, parse_trajectory
from ise_es.projections.openclaw import ParsedSession, load_tool_schemas, parse_openclaw
from ise_es.projections.session import fold_session
from ise_es.store.base import StoredEvent
from ise_es.store.engine import connect_engines
from ise_es.store.sql import open_store
from tests.projections.builders import SessionBuilder, append_visible, simple_session
from tests.projections.test_formats import rich_session, secret_session

GOLDEN = Path(__file__).resolve().parent / "golden"
ROOT = Path(__file__).resolve().parents[2]
OPENCLAW = [
    ROOT / "fixtures" / "openclaw" / "session-logs.jsonl",
    ROOT / "fixtures" / "openclaw" / "session-server.jsonl",
    *sorted((ROOT / "fixtures" / "reference" / "sessions").glob("*.jsonl")),
]
[LEGACY] = sorted((ROOT / "fixtures" / "reference" / "middle-legacy").glob("*.json"))
TOOLS = ROOT / "fixtures" / "reference" / "tools.json"
INTENTS = ROOT / "fixtures" / "reference" / "intents.jsonl"
UPDATE = os.environ.get("ISE_ES_UPDATE_GOLDEN") == "1"

OPTIONS: dict[str, dict[str, Any]] = {
    "openai": {},
    "openai-think": {"reasoning": "think"},
    "openai-drop": {"reasoning": "drop"},
    "openai-per-turn": {"samples": "per-turn"},
    "openai-keep": {"malformed": "keep"},
    "openai-malformed-drop": {"malformed": "drop"},
    "openai-redact": {"redact": True},
    "sharegpt": {"format": "sharegpt"},
    "sharegpt-drop": {"format": "sharegpt", "reasoning": "drop"},
    "sharegpt-per-turn": {"format": "sharegpt", "samples": "per-turn"},
    "sharegpt-keep": {"format": "sharegpt", "malformed": "keep"},
    "sharegpt-redact": {"format": "sharegpt", "redact": True},
    "middle": {"format": "middle"},
    "middle-think": {"format": "middle", "reasoning": "think"},
    "middle-drop": {"format": "middle", "reasoning": "drop"},
    "middle-legacy": {"format": "middle", "middle_shape": "legacy"},
    "middle-reference": {"format": "middle", "success": "reference"},
    "middle-redact": {"format": "middle", "redact": True},
    "middle-legacy-all": {
        "format": "middle",
        "middle_shape": "legacy",
        "success": "reference",
        "redact": True,
        "reasoning": "think",
    },
}


def check(name: str, text: str) -> None:
    """`text` is byte for byte golden/NAME (written instead under ISE_ES_UPDATE_GOLDEN=1)."""
    path = GOLDEN / name
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"no golden file {path}: run with ISE_ES_UPDATE_GOLDEN=1 once"
    expected = path.read_text()
    if text != expected:
        got, want = text.splitlines(), expected.splitlines()
        first = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        pytest.fail(
            f"{name} differs from its golden file at line {first + 1}:\n"
            f"  got:  {got[first] if first < len(got) else '<end>'}\n"
            f"  want: {want[first] if first < len(want) else '<end>'}"
        )


def dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=1) + "\n"


def stored(session_id: str, events: list[Any]) -> list[StoredEvent]:
    """`events` as the stream `session-<session_id>` (the builders' positions and times)."""
    builder = SessionBuilder(session_id)
    builder.events = list(events)
    return builder.stored()


def malformed_session() -> SessionBuilder:
    b = SessionBuilder("bad")
    b.user("Go.")
    b.agent(
        "Trying two things.",
        reasoning="One of these may be broken.",
        calls=[("exec", '{"command": "ls"'), ("exec", {"command": "pwd"})],
        results=["error: bad arguments", ("/tmp\n", 0)],
    )
    b.agent(calls=[("exec", "[1, 2]")], results=["error: arguments must be an object"])
    b.agent("Retried.")
    return b.end()


def multi_intent_session() -> SessionBuilder:
    """Two intents in one session, a reference answer, a failed call and a timed-out one."""
    b = SessionBuilder(
        "multi",
        intent_record={
            "domains": ["ops"],
            "tasks": ["audit", "report"],
            "complexity": "complex",
            "skills_used": ["shell"],
            "answer": "42 files",
            "task_type": "analysis",
        },
    )
    first = b.events[0]
    assert isinstance(first, SessionStarted)
    b.events[0] = msgspec.structs.replace(
        first,
        intents=[
            {"intent_id": "i1", "natural_language_intent": "Count the files.", "task_type": "a"},
            {"intent_id": "i2", "natural_language_intent": "Report the total."},
        ],
        provenance={"recorder": "test", "seed": 7},
        template_digest="abc123",
    )
    b.user("Count the files.")
    b.events[-1] = msgspec.structs.replace(b.events[-1], intent_id="i1")
    b.agent("  Counting.  ", reasoning="  Use find.  ", calls=[("exec", {"command": "find ."})])
    b.events[-1] = ToolCallFinished(
        call_id="call_multi_1",
        tool="exec",
        result_text="  42 files\n",
        exit_code=2,
        is_error=False,
        timed_out=True,
        duration_ms=30000.0,
        error="timed out",
        details={"status": "timeout", "isError": False},
    )
    b.agent("42 files.")
    b.user("Now report the total.")
    b.events[-1] = msgspec.structs.replace(b.events[-1], intent_id="i2")
    b.agent("Total: 42.")
    b.end()
    closing = b.events[-2]
    assert isinstance(closing, UserTurn)
    b.events[-2] = msgspec.structs.replace(closing, intent_id="i2", reason="done", raw="DONE")
    return b


def orphan_session() -> SessionBuilder:
    """A result no call made, and a call without a result."""
    b = SessionBuilder("orphan")
    b.user("Run it.")
    b.events.append(ToolCallFinished(call_id="ghost", tool="exec", result_text="stray output"))
    b.agent(calls=[("exec", {"command": "true"})], results=[None])
    b.agent("Done?")
    return b.end("turn_cap")


def openclaw_streams() -> dict[str, list[StoredEvent]]:
    out: dict[str, list[StoredEvent]] = {}
    for path in OPENCLAW:
        parsed = parse_openclaw(path, intents=intent_records_by_id(INTENTS))
        out[f"openclaw:{path.name}"] = stored(parsed.session_id, [e.data for e in parsed.events])
    return out


def sessions() -> dict[str, list[StoredEvent]]:
    built = {
        "simple": simple_session("s1", turns=2),
        "rich": rich_session(),
        "bad": malformed_session(),
        "secret": secret_session(),
        "multi": multi_intent_session(),
        "orphan": orphan_session(),
    }
    return {
        **{name: b.stored() for name, b in built.items()},
        **openclaw_streams(),
    }


def rendered(events: list[StoredEvent], options: dict[str, Any]) -> Any:
    try:
        return render(fold_session(events), resolve_options(**options))
    except Unrepresentable as e:
        return f"{type(e).__name__}: {e}"


@pytest.mark.parametrize("fmt", ["openai", "sharegpt", "middle"])
def test_trainer_formats(fmt: str) -> None:
    cases = {
        f"{name} / {label}": rendered(events, options)
        for name, events in sessions().items()
        for label, options in OPTIONS.items()
        if label.startswith(fmt)
    }
    check(f"formats-{fmt}.json", dump(cases))


def parsed_builtins(parsed: ParsedSession, tmp: Path | None = None) -> Any:
    data = msgspec.to_builtins(parsed)
    text = json.dumps(data, ensure_ascii=False)
    if tmp is not None:
        text = text.replace(str(tmp), "<tmp>")
    return json.loads(text.replace(str(ROOT), "<root>"))


def test_import_openclaw(tmp_path: Path) -> None:
    tools = load_tool_schemas(TOOLS)
    intents = intent_records_by_id(INTENTS)
    cases: dict[str, Any] = {}
    for path in OPENCLAW:
        cases[f"{path.name} / default"] = parsed_builtins(parse_openclaw(path))
        cases[f"{path.name} / tools+intents"] = parsed_builtins(
            parse_openclaw(path, tools=tools, intents=intents)
        )
    cut = tmp_path / OPENCLAW[-1].name
    cut.write_bytes(OPENCLAW[-1].read_bytes()[:-40] + b"\nnot json\n")
    cases["cut-off / skip_invalid"] = parsed_builtins(
        parse_openclaw(cut, intents=intents, skip_invalid=True), tmp_path
    )
    check("import-openclaw.json", dump(cases))


def test_import_middle(tmp_path: Path) -> None:
    cases: dict[str, Any] = {"legacy fixture": [parsed_builtins(p) for p in parse_middle(LEGACY)]}
    for name, events in sessions().items():
        for label in ("middle", "middle-legacy", "middle-legacy-all", "middle-think"):
            [doc] = render(fold_session(events), resolve_options(**OPTIONS[label]))
            cases[f"{name} / {label}"] = parsed_builtins(parse_trajectory(doc, f"{name}.json"))
    lines = tmp_path / "many.jsonl"
    lines.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n[1]\n{"messages": 3}\n')
    cases["jsonl / skip_invalid"] = [
        parsed_builtins(p, tmp_path) for p in parse_middle(lines, skip_invalid=True)
    ]
    check("import-middle.json", dump(cases))


def atif_text(document: dict[str, Any], tmp: Path, session_id: str) -> str:
    return write_trajectory(tmp, document, session_id).read_text()


def test_atif_round_trip(tmp_path: Path) -> None:
    """Export, import of that export, and export again of the import, for every session."""
    out: list[str] = []
    for name, events in sessions().items():
        view = fold_session(events)
        first = atif_text(trajectory(view, events), tmp_path, view.session_id)
        parsed = parse_atif(tmp_path / f"{view.session_id}.json")
        again = stored(parsed.session_id, [e.data for e in parsed.events])
        second = atif_text(trajectory(fold_session(again), again), tmp_path, "again")
        out += [f"=== {name}: export\n", first, f"=== {name}: import\n"]
        out.append(dump(parsed_builtins(parsed, tmp_path)))
        out += [f"=== {name}: export of the import\n", second]
    check("atif.txt", "".join(out))


@pytest.fixture
def filled_store(db_url: str) -> Iterator[str]:
    """A store holding the golden sessions, every event recorded at the same instant."""
    with open_store(db_url, clock=lambda: 1_700_000_000.0) as store:
        for events in sessions().values():
            append_visible(store, events[0].stream_id, [e.data for e in events], 0)
    yield db_url


def folder_text(folder: Path) -> str:
    """Every file of an export folder: text files whole, Parquet as its schema and rows
    (its bytes are pinned by the sha256 the manifest lists)."""
    parts: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            body = dump({"schema": str(table.schema), "rows": table.to_pylist()})
        else:
            body = path.read_text()
        parts += [f"=== {name}\n", body]
    return "".join(parts)


def test_atif_folder(filled_store: str, tmp_path: Path) -> None:
    with open_store(filled_store) as store:
        report = export_atif(store, tmp_path / "atif", status="any")
    assert report.files == len(sessions())
    check("atif-folder.txt", folder_text(tmp_path / "atif"))


@pytest.mark.parametrize(
    ("label", "options"),
    [
        (
            "openai",
            HfOptions(
                export=ExportOptions(split={"train": 0.5, "test": 0.5}, seed=3, status="any"),
                group_rows=1,
                file_rows=2,
                plots=False,
            ),
        ),
        (
            "middle",
            HfOptions(
                export=ExportOptions(render=resolve_options("middle"), status="any"),
                license="apache-2.0",
                plots=False,
            ),
        ),
        (
            "sharegpt",
            HfOptions(export=ExportOptions(render=resolve_options("sharegpt")), plots=False),
        ),
    ],
)
def test_hf_dataset_folder(
    filled_store: str, tmp_path: Path, label: str, options: HfOptions
) -> None:
    engines = connect_engines(filled_store)
    try:
        with open_store(filled_store) as store:
            export_hf_dataset(store, engines, tmp_path / "ds", options)
    finally:
        engines.dispose()
    text = folder_text(tmp_path / "ds")
    check(
        f"hf-dataset-{label}.txt", text.replace('"database": "postgresql"', '"database": "sqlite"')
    )
