"""`ise-es project sft-jsonl`: trajectories to training files, in one pass and bounded memory.

One catch-up read of the log (only the event types projections need: never the output chunks)
gathers each session's events until its SessionEnded arrives; the session is then folded,
filtered, rendered, and its lines appended to a spool file beside the output, with its
(session id, offset, length) kept in a small index. At the end the spool is copied into the
output file(s) in session-id order (sorted here, not by a database collation, so SQLite and
PostgreSQL give identical files), and each file is fsynced and renamed into place only when
everything succeeded. Memory holds the index and the sessions still open in the log; if open
sessions ever hold more than `max_buffered` events their buffers are dropped and those
sessions are re-read from the store when they end.

Sessions that have not ended are not trajectories and are never exported (`--status any`
keeps every ended session). A rerun with the same options, when no session has ended since
the last export and the files are as it left them, does nothing (`up_to_date`); otherwise the
files are written again in full.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import msgspec
import sqlalchemy as sa

from ise_es.errors import ConfigError, OutputError
from ise_es.outputs import STDOUT, PendingOutput, atomic_output, check_output_path, is_stdout
from ise_es.projections.audit import audit_session, load_lexicon
from ise_es.projections.formats import Excluded, RenderOptions, Unrepresentable, render
from ise_es.projections.onepass import OnePass
from ise_es.projections.session import (
    CONVERSATION_TYPES,
    SessionView,
)
from ise_es.projections.tables import export_manifests
from ise_es.store.base import EventStore

__all__ = [
    "ExportOptions",
    "ExportReport",
    "ExportShare",
    "Exporter",
    "OutputFile",
    "Selection",
    "SessionSource",
    "export_sft",
    "export_types",
    "parse_split",
    "split_of",
    "split_paths",
]

STATUSES = ("completed", "turn_cap", "stalled", "error", "interrupted", "any")


class ExportOptions(msgspec.Struct, frozen=True, kw_only=True):
    render: RenderOptions = RenderOptions()
    status: str = "completed"
    clean: bool = False
    min_user_turns: int = 0
    split: dict[str, float] | None = None
    seed: int = 0
    lexicon: list[str] | None = None
    """Role-drift phrases for `clean` (None: the shipped lexicon)."""
    exclude_items: tuple[str, ...] = ()
    """Work items whose sessions are left out: versions superseded by newer content (their
    sessions stay in the log). `with_superseded` fills it from the store's queue."""


class OutputFile(msgspec.Struct, kw_only=True):
    path: str
    samples: int
    bytes: int
    split: str | None = None


class ExportReport(msgspec.Struct, kw_only=True):
    files: list[OutputFile]
    sessions_considered: int = 0
    sessions_exported: int = 0
    samples: int = 0
    skipped: dict[str, int] = {}
    up_to_date: bool = False
    seconds: float = 0.0
    parts: int = 1
    """Processes the read was split among (parts.py)."""

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def parse_split(text: str) -> dict[str, float]:
    """`train=0.95,val=0.05` -> {"train": 0.95, "val": 0.05}.

    A share of 0 is valid: that split gets no session and its file is written empty (a
    pipeline that always reads OUT.test.jsonl keeps working while the test share is 0).

    Raises:
        ConfigError: malformed, a share outside [0, 1], duplicate names, or shares not
            summing to 1.
    """
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(
                f"bad split {part.strip()!r} in {text!r}: use NAME=SHARE pairs such as "
                "train=0.95,val=0.05"
            )
        try:
            share = float(value)
        except ValueError:
            share = math.nan
        if not 0.0 <= share <= 1.0:  # also refuses nan and inf
            raise ConfigError(
                f"bad share {value.strip()!r} for split {name!r} in {text!r}: a share is a "
                "number from 0 to 1"
            )
        if name in out:
            raise ConfigError(f"split {name!r} named twice in {text!r}")
        out[name] = share
    total = sum(out.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"split shares in {text!r} add up to {total:g}, not 1")
    return out


def split_of(session_id: str, seed: int, split: dict[str, float]) -> str:
    """The split a session belongs to: a function of (seed, session id) alone, so adding
    sessions never moves an existing one to another split. A split with share 0 gets none."""
    digest = hashlib.sha256(f"{seed}:{session_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    names = [name for name, share in split.items() if share > 0]
    for name in names:
        cumulative += split[name]
        if point < cumulative:
            return name
    return names[-1]  # shares summing to a hair under 1


def split_paths(output: Path, names: list[str]) -> dict[str, Path]:
    """`out/sft.jsonl` with splits train, val -> out/sft.train.jsonl, out/sft.val.jsonl."""
    suffix = output.suffix or ".jsonl"
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return {name: output.with_name(f"{stem}.{name}{suffix}") for name in names}


def with_superseded(store: EventStore, options: ExportOptions) -> ExportOptions:
    """`options` leaving out the sessions of superseded work items (an edited intent or
    scenario was recorded again). Part of the options digest, so superseding an item makes
    an export that was up to date stale even though the log did not grow."""
    superseded = sorted(r.item_id for r in store.queue.items(states=["superseded"]))
    return msgspec.structs.replace(options, exclude_items=(*options.exclude_items, *superseded))


def _options_digest(options: ExportOptions, output: Path) -> str:
    payload = msgspec.json.encode({"options": options, "output": str(output)})
    return hashlib.sha256(payload).hexdigest()


def _file_state(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


class _Manifest(msgspec.Struct, kw_only=True):
    options_digest: str
    position: int
    files: list[dict[str, Any]]


def _load_manifest(store: EventStore, output: Path) -> _Manifest | None:
    with store.read_projection() as conn:
        row = conn.execute(
            sa.select(export_manifests).where(export_manifests.c.output == str(output))
        ).one_or_none()
    if row is None:
        return None
    return _Manifest(
        options_digest=row.options_digest, position=row.position, files=json.loads(row.files)
    )


def _files_unchanged(manifest: _Manifest) -> bool:
    for f in manifest.files:
        state = _file_state(Path(f["path"]))
        if state is None or state["size"] != f["size"] or state["mtime_ns"] != f["mtime_ns"]:
            return False
    return True


def _manifest_name(output: Path) -> str:
    """The export's checkpoint: the position its files were written at, beside the manifest."""
    return "export@" + hashlib.sha256(str(output).encode()).hexdigest()[:24]


def _save_manifest(
    store: EventStore, output: Path, digest: str, position: int, files: list[OutputFile]
) -> None:
    recorded = []
    for f in files:
        state = _file_state(Path(f.path)) or {"size": f.bytes, "mtime_ns": 0}
        recorded.append(
            {
                "path": f.path,
                "size": state["size"],
                "mtime_ns": state["mtime_ns"],
                "samples": f.samples,
                "split": f.split,
            }
        )

    def rows(conn: sa.Connection) -> None:
        conn.execute(sa.delete(export_manifests).where(export_manifests.c.output == str(output)))
        conn.execute(
            sa.insert(export_manifests).values(
                output=str(output),
                options_digest=digest,
                position=position,
                files=json.dumps(recorded),
                updated_at=time.time(),
            )
        )

    store.write_projection(_manifest_name(output), position, rows)


class _Entry(msgspec.Struct, array_like=True):
    session_id: str
    split: str | None
    offset: int
    length: int
    samples: int


class Selection:
    """Which ended sessions an export keeps, and their samples: the filters every export
    shares (`sft-jsonl`, `hf-dataset`), applied in this order, each refusal counted."""

    def __init__(self, options: ExportOptions) -> None:
        self.options = options
        self.lexicon = (options.lexicon or load_lexicon()) if options.clean else []
        self.skipped: Counter[str] = Counter()
        self.considered = 0
        self._excluded = frozenset(options.exclude_items)

    def samples(self, view: SessionView) -> list[dict[str, Any]] | None:
        """The session's samples, or None when it is not exported (open, filtered, or not
        expressible in the format; counted in `skipped` except open sessions)."""
        options = self.options
        status = view.status
        if status is None:
            return None
        self.considered += 1
        item = view.started.provenance.get("work_item") if view.started else None
        if item is not None and item in self._excluded:
            self.skipped["superseded by newer content"] += 1
            return None
        if options.status != "any" and status != options.status:
            self.skipped[f"status {status}"] += 1
            return None
        if len(view.user_turns()) < options.min_user_turns:
            self.skipped["fewer user turns"] += 1
            return None
        if options.clean:
            rules = {f.rule for f in audit_session(view, self.lexicon).findings}
            if options.render.redact:
                rules.discard("secret_leak")  # redacted below, so no longer a leak
            if rules:
                self.skipped["flagged by audit"] += 1
                return None
        try:
            samples = render(view, options.render)
        except Excluded as e:
            self.skipped[e.reason] += 1
            return None
        except Unrepresentable:
            self.skipped[f"not expressible in {options.render.format}"] += 1
            return None
        if not samples:
            self.skipped["no assistant message"] += 1
            return None
        return samples

    def split_of(self, session_id: str) -> str | None:
        split = self.options.split
        return split_of(session_id, self.options.seed, split) if split else None


class ExportShare(msgspec.Struct, kw_only=True):
    """What an exporter in another process spooled (a pass split by stream: parts.py)."""

    spool: str
    """The file its lines are in, in arrival order."""
    index: list[_Entry]
    considered: int
    skipped: dict[str, int]


class Exporter:
    """Renders ended sessions into the spool as they arrive; see the module docstring.

    `spool_dir` is where the spool is (None: the temp directory): the spools of a split
    pass's other processes go there too."""

    def __init__(self, options: ExportOptions, spool: BinaryIO, spool_dir: str | None) -> None:
        self.selection = Selection(options)
        self.spool = spool
        self.spool_dir = spool_dir
        self.encoder = msgspec.json.Encoder()
        self.index: list[_Entry] = []
        self.offset = 0

    @property
    def options(self) -> ExportOptions:
        return self.selection.options

    @property
    def considered(self) -> int:
        return self.selection.considered

    @property
    def skipped(self) -> Counter[str]:
        return self.selection.skipped

    def session(self, view: SessionView) -> None:
        samples = self.selection.samples(view)
        if samples is None:
            return
        chunk = b"".join(self.encoder.encode(sample) + b"\n" for sample in samples)
        self.spool.write(chunk)
        split = self.selection.split_of(view.session_id)
        self.index.append(_Entry(view.session_id, split, self.offset, len(chunk), len(samples)))
        self.offset += len(chunk)

    def share(self, spool: str) -> ExportShare:
        """This exporter's work for another process's `absorb` (its spool is file `spool`)."""
        self.spool.flush()
        return ExportShare(
            spool=spool,
            index=self.index,
            considered=self.considered,
            skipped=dict(self.skipped),
        )

    def absorb(self, share: ExportShare) -> None:
        """Append another exporter's spooled lines and index to this one's."""
        with open(share.spool, "rb") as lines:
            shutil.copyfileobj(lines, self.spool, 1 << 20)
        for entry in share.index:
            entry.offset += self.offset
        self.index.extend(share.index)
        self.offset += sum(e.length for e in share.index)
        self.selection.considered += share.considered
        self.selection.skipped.update(share.skipped)


SessionSource = Callable[["Exporter", tuple[str, ...]], int]
"""A read of the log that hands every ended session, folded from (at least) the given event
types, to the exporter and returns the last position read (`project all` shares one read
among export, audit and stats: onepass.py, split among processes: parts.py)."""

MIDDLE_TYPES = (*CONVERSATION_TYPES, "model_call", "fs_diff")
"""The middle format also carries each agent step's model call and each call's file changes."""


def export_types(options: ExportOptions) -> tuple[str, ...]:
    """The event types an export's sessions are folded from: the conversation alone (the chat
    formats and the selection read nothing else), with model calls and diffs for `middle`.
    tests/projections/test_export.py checks every format renders the same from these as from
    every session type."""
    return MIDDLE_TYPES if options.render.format == "middle" else CONVERSATION_TYPES


def _gather(
    store: EventStore,
    exporter: Exporter,
    max_buffered: int,
    progress: Callable[[int], None] | None,
    sessions: SessionSource | None = None,
) -> int:
    """Feed every ended session to the exporter; return the last position read."""
    types = export_types(exporter.selection.options)
    if sessions is not None:
        return sessions(exporter, types)
    one = OnePass(store, [], max_buffered=max_buffered, progress=progress)
    return one.run(exporter.session, export_types=types)


def _copy_sorted(exporter: Exporter, spool: BinaryIO, split: str | None, out: BinaryIO) -> int:
    """Copy one split's lines from the spool in session-id order; return its sample count."""
    spool.flush()
    exporter.index.sort(key=lambda e: e.session_id)
    samples = 0
    for entry in exporter.index:
        if entry.split != split:
            continue
        spool.seek(entry.offset)
        out.write(spool.read(entry.length))
        samples += entry.samples
    return samples


def _export_to_stdout(
    store: EventStore,
    options: ExportOptions,
    max_buffered: int,
    progress: Callable[[int], None] | None,
    started: float,
    sessions: SessionSource | None,
) -> ExportReport:
    """`-o -`: the same lines on standard output, spooled in the temp directory. There is no
    file to compare, so no manifest and no `up_to_date`; one file per split cannot be stdout."""
    if options.split:
        raise OutputError(
            "--split writes one file per split (OUT.train.jsonl, ...): give -o FILE, not -o -"
        )
    with tempfile.TemporaryFile(prefix="ise-es-sft.spool.") as spool:
        exporter = Exporter(options, spool, None)
        _gather(store, exporter, max_buffered, progress, sessions)
        with atomic_output(STDOUT) as stdout:
            samples = _copy_sorted(exporter, spool, None, stdout)
    size = sum(e.length for e in exporter.index)
    return ExportReport(
        files=[OutputFile(path=STDOUT, samples=samples, bytes=size)],
        sessions_considered=exporter.considered,
        sessions_exported=len(exporter.index),
        samples=samples,
        skipped=dict(exporter.skipped),
        seconds=time.perf_counter() - started,
    )


def _unchanged(store: EventStore, out: Path, digest: str) -> ExportReport | None:
    """The report of the files as they are, when the last export wrote them with the same
    options, nobody touched them and no session has ended since; None otherwise."""
    manifest = _load_manifest(store, out)
    if (
        manifest is None
        or manifest.options_digest != digest
        or not _files_unchanged(manifest)
        or store.read_all(manifest.position, 1, types=("session_ended",))
    ):
        return None
    files = [
        OutputFile(path=f["path"], samples=f["samples"], bytes=f["size"], split=f["split"])
        for f in manifest.files
    ]
    return ExportReport(files=files, samples=sum(f.samples for f in files), up_to_date=True)


def _write_files(
    store: EventStore,
    options: ExportOptions,
    targets: dict[str | None, Path],
    max_buffered: int,
    progress: Callable[[int], None] | None,
    sessions: SessionSource | None,
) -> tuple[Exporter, Counter[str | None], int]:
    """Spool every kept session, then copy each split's lines into its file in session-id
    order; the files are renamed into place only once all of them are complete (a failure
    leaves every old file in place). Returns the exporter, samples per file and the position
    read."""
    names = list(targets)
    counts: Counter[str | None] = Counter()
    pending: dict[str | None, PendingOutput] = {}
    try:
        for name in names:
            pending[name] = PendingOutput(targets[name])
        spool_dir = pending[names[0]].target.parent
        prefix = f".{targets[names[0]].name}.spool."
        with tempfile.TemporaryFile(dir=spool_dir, prefix=prefix) as spool:
            exporter = Exporter(options, spool, str(spool_dir))
            position = _gather(store, exporter, max_buffered, progress, sessions)
            for name in names:
                counts[name] = _copy_sorted(exporter, spool, name, pending[name].file)
        for name in names:
            pending.pop(name).commit()
    finally:
        for left in pending.values():
            left.discard()
    return exporter, counts, position


def export_sft(
    store: EventStore,
    output: str | Path,
    options: ExportOptions,
    *,
    force: bool = False,
    max_buffered: int = 500_000,
    progress: Callable[[int], None] | None = None,
    sessions: SessionSource | None = None,
) -> ExportReport:
    """Write the SFT file(s) for `options`; see the module docstring. `sessions` replaces the
    export's own read of the log (not called when the files are up to date).

    `output` may be `-` (standard output, no split); other targets follow `ise_es.outputs`
    (never a device, FIFO or directory; a symlink is written through).

    Raises:
        ConfigError: a bad status.
        OutputError: an output that cannot or must not be written (nothing is left behind).
        StoreUnavailable: the database cannot be reached.
    """
    started = time.perf_counter()
    if options.status not in STATUSES:
        raise ConfigError(f"unknown status {options.status!r}: use one of {', '.join(STATUSES)}")
    options = with_superseded(store, options)
    if is_stdout(output):
        return _export_to_stdout(store, options, max_buffered, progress, started, sessions)
    out = Path(output).absolute()
    targets: dict[str | None, Path] = {None: out}
    if options.split:
        targets = {name: path for name, path in split_paths(out, list(options.split)).items()}
    for target in targets.values():
        check_output_path(target)  # before the log is read: a bad path fails at once
    digest = _options_digest(options, out)
    if not force and (unchanged := _unchanged(store, out, digest)) is not None:
        unchanged.seconds = time.perf_counter() - started
        return unchanged
    try:
        exporter, counts, position = _write_files(
            store, options, targets, max_buffered, progress, sessions
        )
    except OSError as e:  # the spool or a file could not be written (a full disk...)
        raise OutputError(f"cannot write {output}: {e.strerror or e}") from e
    files = [
        OutputFile(path=str(path), samples=counts[name], bytes=path.stat().st_size, split=name)
        for name, path in targets.items()
    ]
    _save_manifest(store, out, digest, position, files)
    return ExportReport(
        files=files,
        sessions_considered=exporter.considered,
        sessions_exported=len(exporter.index),
        samples=sum(counts.values()),
        skipped=dict(exporter.skipped),
        seconds=time.perf_counter() - started,
    )
