"""`ise-es project hf-dataset`: a corpus as a Hugging Face dataset folder.

    DIR/data/{split}-NNNNN-of-MMMMM.parquet   rows in session-id order (zstd, small row groups)
    DIR/README.md                             the dataset card (`card.py`)
    DIR/*.png                                 the statistics figures the card shows
    DIR/manifest.json                         every file's sha256 and rows, the store position

Which sessions and how each becomes samples is `project sft-jsonl`'s selection
(`export.Selection`, same options), in the same single catch-up read
(`gather.gather_sessions`). Each kept session's rows (`hfrows`) are appended as JSON lines to a
spool file and indexed. At the end the index is sorted by session id (in Python, so both
databases give the same files), cut into row groups of at most `group_rows` rows and about
`group_bytes` bytes, each parsed by pyarrow's JSON reader against the declared schema and
appended to a ParquetWriter; a file is closed past `file_rows` rows or `file_bytes` bytes (a
session's rows never straddle two files). Memory holds the index, one row group and the
sessions still open in the log, whatever the corpus size.

The card's figures come from the stats and audit read models (`readmodel.py`), caught up
first and restricted to the sessions of this pass, so they are the numbers `project stats`
and `project audit` report, and a store whose read models are current does not summarise or
audit anything again.

The folder is built aside and swapped in whole (`folder.py`). A rerun with the same options
when no session or replay has ended since the manifest's position, and every file is as the
manifest lists it, does nothing (`up_to_date`); otherwise the folder is written again.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from ise_es.errors import ConfigError
from ise_es.events import SessionStarted
from ise_es.projections.audit import AuditSummary, load_lexicon
from ise_es.projections.audit import summarize as summarize_audits
from ise_es.projections.export import (
    STATUSES,
    ExportOptions,
    Selection,
    with_superseded,
)
from ise_es.projections.folder import (
    MANIFEST,
    current_manifest,
    file_entry,
    file_sha256,
    ise_es_version,
    staged_folder,
)
from ise_es.projections.gather import gather_sessions
from ise_es.projections.hfrows import arrow_schema, row_from_sample
from ise_es.projections.readmodel import (
    AuditModel,
    CatchUpResult,
    StatsModel,
    catch_up,
    load_audits,
    load_replays,
    load_summaries,
)
from ise_es.projections.session import SessionView
from ise_es.projections.stats import CorpusStats, corpus_stats
from ise_es.store.base import EventStore, StoredEvent
from ise_es.store.engine import Engines

__all__ = ["HfOptions", "HfReport", "Provenance", "export_hf_dataset"]

MANIFEST_FORMAT = "ise-es hf-dataset manifest 1"


class HfOptions(msgspec.Struct, frozen=True, kw_only=True):
    export: ExportOptions = ExportOptions()
    license: str | None = None
    """SPDX-style id for the card; None writes `license: other` and a note to replace it."""
    group_rows: int = 1000
    group_bytes: int = 32 << 20
    """Row-group bound in row-JSON bytes: the Hub's viewer pages by row group."""
    file_rows: int = 100_000
    file_bytes: int = 512 << 20
    plots: bool = True


class ParquetFile(msgspec.Struct, kw_only=True):
    path: str
    """Relative to the dataset folder."""
    split: str
    rows: int
    row_groups: int
    bytes: int
    arrow_bytes: int = 0
    """The rows' size in memory (Arrow), the card's `num_bytes`."""
    sha256: str = ""


class Provenance(msgspec.Struct, kw_only=True):
    """How the kept sessions were made: counts per model, sandbox and template."""

    models: dict[str, int] = {}
    """`role backend model` -> sessions."""
    sandboxes: dict[str, int] = {}
    templates: dict[str, int] = {}
    """`template digest` -> sessions."""
    sources: dict[str, int] = {}
    """Recorder or importer -> sessions."""


class HfReport(msgspec.Struct, kw_only=True):
    folder: str
    files: list[ParquetFile]
    splits: dict[str, int] = {}
    sessions_considered: int = 0
    sessions_exported: int = 0
    rows: int = 0
    skipped: dict[str, int] = {}
    position: int = 0
    read_models: list[CatchUpResult] = []
    """The stats and audit read models' catch-up before the card's figures were read."""
    up_to_date: bool = False
    seconds: float = 0.0


class _Entry(msgspec.Struct, array_like=True):
    session_id: str
    split: str
    offset: int
    length: int
    rows: int


def options_digest(options: HfOptions) -> str:
    return hashlib.sha256(msgspec.json.encode(options)).hexdigest()


class _Collector:
    """The per-session work of the single pass: rows, summaries, audits, provenance."""

    def __init__(self, options: HfOptions, rows: IO[bytes]) -> None:
        self.options = options
        self.fmt = options.export.render.format
        self.selection = Selection(options.export)
        self.rows = rows
        self.encoder = msgspec.json.Encoder()
        self.index: list[_Entry] = []
        self.offset = 0
        self.ended: set[str] = set()
        """Every ended session of the pass (the card's corpus figures are over these)."""
        self.models: Counter[str] = Counter()
        self.sandboxes: Counter[str] = Counter()
        self.templates: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()

    def session(self, view: SessionView, _events: list[StoredEvent]) -> None:
        if view.status is None:
            return
        self.ended.add(view.session_id)
        samples = self.selection.samples(view)
        if samples is not None:
            sid = view.session_id
            chunk = b"".join(
                self.encoder.encode(row_from_sample(s, self.fmt, sid)) + b"\n" for s in samples
            )
            self.rows.write(chunk)
            split = self.selection.split_of(sid) or "train"
            self.index.append(_Entry(sid, split, self.offset, len(chunk), len(samples)))
            self.offset += len(chunk)
            self._provenance(view.started)

    def _provenance(self, started: SessionStarted | None) -> None:
        if started is None:
            return
        for spec in started.models:
            self.models[f"{spec.role} {spec.backend} {spec.model}"] += 1
        self.sandboxes[started.sandbox_backend or "(none)"] += 1
        if started.template or started.template_digest:
            self.templates[f"{started.template or '(unnamed)'} {started.template_digest}"] += 1
        provenance = started.provenance
        source = provenance.get("importer") or provenance.get("recorder") or "(unknown)"
        self.sources[str(source)] += 1

    def provenance(self) -> Provenance:
        def ordered(c: Counter[str]) -> dict[str, int]:
            return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))

        return Provenance(
            models=ordered(self.models),
            sandboxes=ordered(self.sandboxes),
            templates=ordered(self.templates),
            sources=ordered(self.sources),
        )


class Figures(msgspec.Struct, kw_only=True):
    """What the card reports: corpus figures, Table 3 over the kept trajectories, audits."""

    corpus: CorpusStats
    """Over every ended session (completion rate, statuses)."""
    selection: CorpusStats
    """Over the kept trajectories only (the dataset's rows)."""
    audits: AuditSummary


def _figures(
    store: EventStore, engines: Engines, collector: _Collector
) -> tuple[Figures, list[CatchUpResult]]:
    """The card's figures, from the stats and audit read models (caught up first: incremental,
    so a store whose read models are current pays almost nothing), restricted to this pass's
    sessions: the numbers `project stats --json` and `project audit` give for them."""
    lexicon = collector.options.export.lexicon or load_lexicon()
    caught = [catch_up(store, StatsModel()), catch_up(store, AuditModel(lexicon))]
    kept = {e.session_id for e in collector.index}
    streams = {f"session-{sid}" for sid in kept}
    replays = [r for r in load_replays(store) if r.source_stream in streams]
    ended = collector.ended
    status = collector.options.export.status
    summaries = [s for s in load_summaries(store) if s.session_id in ended]  # one read
    corpus = corpus_stats(summaries, replays, status=status)
    selection = corpus_stats((s for s in summaries if s.session_id in kept), replays, status="any")
    audits = summarize_audits(a for a in load_audits(store) if a.session_id in kept)
    return Figures(corpus=corpus, selection=selection, audits=audits), caught


def _groups(entries: list[_Entry], max_rows: int, max_bytes: int) -> Iterator[list[_Entry]]:
    group: list[_Entry] = []
    rows = size = 0
    for entry in entries:
        if group and (rows + entry.rows > max_rows or size + entry.length > max_bytes):
            yield group
            group, rows, size = [], 0, 0
        group.append(entry)
        rows += entry.rows
        size += entry.length
    if group:
        yield group


def _read_group(spool: IO[bytes], group: list[_Entry], schema: Any, parse: Any) -> Any:
    """The rows of `group`'s sessions, read back from the spool, as an Arrow table of the
    declared schema (the JSON reader checks every row against it)."""
    import pyarrow as pa
    import pyarrow.json as pj

    parts = []
    for entry in group:
        spool.seek(entry.offset)
        parts.append(spool.read(entry.length))
    buffer = b"".join(parts)
    block = max(1 << 20, len(buffer) + 1)  # a JSON line must not straddle two blocks
    return pj.read_json(
        pa.BufferReader(buffer),
        read_options=pj.ReadOptions(block_size=block, use_threads=False),
        parse_options=parse,
    ).select(schema.names)


class _Shards:
    """The shards of one split: row groups go to the open shard, which is closed past the
    file bounds (the next group opens another)."""

    def __init__(self, data_dir: Path, split: str, options: HfOptions, schema: Any) -> None:
        self.data_dir = data_dir
        self.split = split
        self.options = options
        self.schema = schema
        self.files: list[ParquetFile] = []
        self.writer: Any = None
        self.sink: Any = None
        self.current: ParquetFile | None = None

    def open(self) -> ParquetFile:
        import pyarrow as pa
        import pyarrow.parquet as pq

        index = len(self.files)
        current = ParquetFile(
            path=f"data/.{self.split}-{index:05d}.tmp",
            split=self.split,
            rows=0,
            row_groups=0,
            bytes=0,
        )
        self.sink = pa.OSFile(str(self.data_dir.parent / current.path), "wb")
        self.writer = pq.ParquetWriter(self.sink, self.schema, compression="zstd")
        self.current = current
        return current

    def write(self, table: Any, group_rows: int) -> None:
        current = self.current
        assert current is not None, "open() a shard first"
        self.writer.write_table(table, row_group_size=group_rows)
        current.rows += table.num_rows
        current.arrow_bytes += table.nbytes
        current.row_groups += 1
        if current.rows >= self.options.file_rows or self.sink.tell() >= self.options.file_bytes:
            self.close()

    def close(self) -> None:
        current = self.current
        if current is None:
            return
        self.writer.close()
        self.sink.close()
        current.bytes = (self.data_dir.parent / current.path).stat().st_size
        self.files.append(current)
        self.writer = self.sink = self.current = None


def _write_split(
    data_dir: Path,
    split: str,
    entries: list[_Entry],
    spool: IO[bytes],
    options: HfOptions,
) -> list[ParquetFile]:
    """Write one split's shards (temporary names: the count is known only at the end). An
    empty split gets no file: `datasets` refuses a split without rows, so the card leaves it
    out."""
    import pyarrow.json as pj

    schema = arrow_schema(options.export.render.format)
    parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    shards = _Shards(data_dir, split, options, schema)
    group_rows = min(options.group_rows, options.file_rows)
    for group in _groups(entries, group_rows, options.group_bytes):
        if shards.current is None:
            shards.open()
        shards.write(_read_group(spool, group, schema, parse), group_rows)
    shards.close()
    return shards.files


def _final_names(data_dir: Path, files: list[ParquetFile]) -> None:
    """`{split}-NNNNN-of-MMMMM.parquet`, numbered within each split."""
    for split in dict.fromkeys(f.split for f in files):
        shards = [f for f in files if f.split == split]
        for i, f in enumerate(shards):
            name = f"data/{split}-{i:05d}-of-{len(shards):05d}.parquet"
            (data_dir.parent / f.path).rename(data_dir.parent / name)
            f.path = name
            f.sha256 = file_sha256(data_dir.parent / name)


def _check_options(options: HfOptions) -> None:
    export = options.export
    if export.status not in STATUSES:
        raise ConfigError(f"unknown status {export.status!r}: use one of {', '.join(STATUSES)}")
    if getattr(export.render, "middle_shape", "current") != "current":
        raise ConfigError(
            "hf-dataset writes the current middle shape only (the legacy shape is for the "
            "reference's own tools): drop --middle-shape legacy"
        )
    if min(options.group_rows, options.group_bytes, options.file_rows, options.file_bytes) < 1:
        raise ConfigError("row-group and file bounds must be positive")


def _split_names(options: HfOptions) -> list[str]:
    return list(options.export.split or {"train": 1.0})


def _write_data(
    store: EventStore,
    stage: Path,
    options: HfOptions,
    max_buffered: int,
    progress: Callable[[int], None] | None,
) -> tuple[_Collector, int, list[ParquetFile]]:
    """The single pass over the log (rows spooled, figures' inputs collected), then each
    split's Parquet files under `stage/data`. The collector, the last position read, the files."""
    data_dir = stage / "data"
    data_dir.mkdir()
    with tempfile.TemporaryFile(dir=stage, prefix=".rows.") as rows:
        collector = _Collector(options, rows)
        position = gather_sessions(
            store, collector.session, max_buffered=max_buffered, progress=progress
        )
        rows.flush()
        collector.index.sort(key=lambda e: e.session_id)
        files: list[ParquetFile] = []
        for split in _split_names(options):
            entries = [e for e in collector.index if e.split == split]
            files += _write_split(data_dir, split, entries, rows, options)
        _final_names(data_dir, files)
    return collector, position, files


def _write_card(
    stage: Path, options: HfOptions, report: HfReport, figures: Figures, collector: _Collector
) -> list[str]:
    """README.md and (unless `plots` is off) the figures it shows; the figures' file names."""
    from ise_es.projections.card import render_card

    extra: list[str] = []
    if options.plots:
        from ise_es.projections.plots import write_plots

        extra = [p.name for p in write_plots(figures.selection, stage)]
    (stage / "README.md").write_text(
        render_card(options, report, figures, collector.provenance(), extra)
    )
    return extra


def _up_to_date_report(target: Path, manifest: dict[str, Any]) -> HfReport:
    kept = [ParquetFile(**f) for f in manifest["files"] if f.get("split")]
    return HfReport(
        folder=str(target),
        files=kept,
        splits=manifest.get("splits", {}),
        rows=sum(f.rows for f in kept),
        position=manifest["store"]["position"],
        up_to_date=True,
    )


def _write_folder(
    store: EventStore,
    engines: Engines,
    stage: Path,
    target: Path,
    options: HfOptions,
    digest: str,
    max_buffered: int,
    progress: Callable[[int], None] | None,
) -> HfReport:
    """Every file of the dataset folder, into `stage`: data, card, figures, manifest."""
    collector, position, files = _write_data(store, stage, options, max_buffered, progress)
    figures, caught = _figures(store, engines, collector)
    selection = collector.selection
    report = HfReport(
        folder=str(target),
        files=files,
        splits={s: sum(f.rows for f in files if f.split == s) for s in _split_names(options)},
        sessions_considered=selection.considered,
        sessions_exported=len(collector.index),
        rows=sum(f.rows for f in files),
        skipped=dict(sorted(selection.skipped.items())),
        position=position,
        read_models=caught,
    )
    extra = _write_card(stage, options, report, figures, collector)
    database = engines.write.dialect.name
    _write_manifest(stage, options, digest, report, [*extra, "README.md"], database)
    return report


def export_hf_dataset(
    store: EventStore,
    engines: Engines,
    output: str | Path,
    options: HfOptions,
    *,
    force: bool = False,
    max_buffered: int = 500_000,
    progress: Callable[[int], None] | None = None,
) -> HfReport:
    """Write (or leave, when up to date) the dataset folder `output`; see the module docstring.

    Raises:
        ConfigError: a bad option, or an `output` that is not a folder we may replace.
        StoreUnavailable: the database cannot be reached.
    """
    started = time.perf_counter()
    _check_options(options)
    # Sessions of superseded work items (edited input recorded again) are left out.
    options = msgspec.structs.replace(options, export=with_superseded(store, options.export))
    target = Path(output).absolute()
    digest = options_digest(options)
    types = ("session_ended", "replay_ended")
    manifest = None if force else current_manifest(store, target, digest, types)
    if manifest is not None:
        report = _up_to_date_report(target, manifest)
    else:
        with staged_folder(target) as stage:
            report = _write_folder(
                store, engines, stage, target, options, digest, max_buffered, progress
            )
    report.seconds = time.perf_counter() - started
    return report


def _write_manifest(
    stage: Path,
    options: HfOptions,
    digest: str,
    report: HfReport,
    others: list[str],
    database: str,
) -> None:
    files: list[dict[str, Any]] = [msgspec.to_builtins(f) for f in report.files]
    for name in sorted(others):
        files.append(file_entry(stage, name))
    manifest = {
        "format": MANIFEST_FORMAT,
        "ise_es_version": ise_es_version(),
        "store": {"database": database, "position": report.position},
        "options": msgspec.to_builtins(options),
        "options_digest": digest,
        "splits": report.splits,
        "sessions_considered": report.sessions_considered,
        "sessions_exported": report.sessions_exported,
        "skipped": report.skipped,
        "files": files,
    }
    (stage / MANIFEST).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
