"""`ise-es project sft-jsonl`: trajectories to training files, in constant memory.

Sessions are visited one at a time in session-id order (sorted here, not by the database's
collation, so SQLite and PostgreSQL give the same file), each read, folded, filtered and
rendered, and its lines written straight to a temporary file beside the output, renamed over
it only when everything succeeded. Which sessions qualify comes from the session-summary read
model (status, user turns), brought up to date first; `--clean` audits each session as it is
exported.

Re-running with the same options when the read model's checkpoint has not moved and the output
files are as this export left them does nothing (`up_to_date`). When the log has new events
the files are written again in full: samples are ordered by session id, so new sessions land
in the middle of the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ise_es.errors import ConfigError
from ise_es.projections.audit import audit_session, load_lexicon
from ise_es.projections.formats import RenderOptions, Unrepresentable, render
from ise_es.projections.readmodel import StatsModel, catch_up
from ise_es.projections.session import fold_session
from ise_es.projections.tables import export_manifests, session_summaries
from ise_es.store.base import EventStore
from ise_es.store.engine import Engines

__all__ = [
    "ExportOptions",
    "ExportReport",
    "OutputFile",
    "export_sft",
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

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


def parse_split(text: str) -> dict[str, float]:
    """`train=0.95,val=0.05` -> {"train": 0.95, "val": 0.05}.

    Raises:
        ConfigError: malformed, a non-positive share, duplicate names, or shares not summing to 1.
    """
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if (
            not sep
            or not name
            or share <= 0
            or not name.replace("_", "").replace("-", "").isalnum()
        ):
            raise ConfigError(
                f"bad split {part.strip()!r} in {text!r}: use NAME=SHARE pairs such as "
                "train=0.95,val=0.05"
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
    sessions never moves an existing one to another split."""
    digest = hashlib.sha256(f"{seed}:{session_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    cumulative = 0.0
    names = list(split)
    for name in names:
        cumulative += split[name]
        if point < cumulative:
            return name
    return names[-1]


def split_paths(output: Path, names: list[str]) -> dict[str, Path]:
    """`out/sft.jsonl` with splits train, val -> out/sft.train.jsonl, out/sft.val.jsonl."""
    suffix = output.suffix or ".jsonl"
    stem = output.name[: -len(output.suffix)] if output.suffix else output.name
    return {name: output.with_name(f"{stem}.{name}{suffix}") for name in names}


def _options_digest(options: ExportOptions, output: Path) -> str:
    payload = msgspec.json.encode({"options": options, "output": str(output)})
    return hashlib.sha256(payload).hexdigest()


def _file_state(path: Path) -> dict[str, Any] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _manifest_matches(
    engines: Engines, output: Path, digest: str, position: int
) -> list[OutputFile] | None:
    with engines.read.connect() as conn:
        row = conn.execute(
            sa.select(export_manifests).where(export_manifests.c.output == str(output))
        ).one_or_none()
    if row is None or row.options_digest != digest or row.position != position:
        return None
    files = json.loads(row.files)
    for f in files:
        state = _file_state(Path(f["path"]))
        if state is None or state["size"] != f["size"] or state["mtime_ns"] != f["mtime_ns"]:
            return None
    return [
        OutputFile(path=f["path"], samples=f["samples"], bytes=f["size"], split=f["split"])
        for f in files
    ]


def _save_manifest(
    engines: Engines, output: Path, digest: str, position: int, files: list[OutputFile]
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
    with engines.write.begin() as conn:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(export_manifests).values(
            output=str(output),
            options_digest=digest,
            position=position,
            files=json.dumps(recorded),
            updated_at=time.time(),
        )
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["output"],
                set_={
                    c: stmt.excluded[c]
                    for c in ("options_digest", "position", "files", "updated_at")
                },
            )
        )


def _candidates(engines: Engines, options: ExportOptions) -> list[str]:
    query = sa.select(session_summaries.c.stream_id)
    if options.status != "any":
        query = query.where(session_summaries.c.status == options.status)
    if options.min_user_turns > 0:
        query = query.where(session_summaries.c.user_turns >= options.min_user_turns)
    with engines.read.connect() as conn:
        return sorted(conn.execute(query).scalars())


def export_sft(
    store: EventStore,
    engines: Engines,
    output: str | Path,
    options: ExportOptions,
    *,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write the SFT file(s) for `options`; see the module docstring.

    Raises:
        ConfigError: a bad status or an output directory that does not exist.
        StoreUnavailable: the database cannot be reached.
    """
    started = time.perf_counter()
    if options.status not in STATUSES:
        raise ConfigError(f"unknown status {options.status!r}: use one of {', '.join(STATUSES)}")
    out = Path(output).absolute()
    if not out.parent.is_dir():
        raise ConfigError(f"output directory {out.parent} does not exist: create it first")
    caught = catch_up(store, engines, StatsModel())
    digest = _options_digest(options, out)
    if not force:
        files = _manifest_matches(engines, out, digest, caught.position)
        if files is not None:
            return ExportReport(
                files=files,
                samples=sum(f.samples for f in files),
                up_to_date=True,
                seconds=time.perf_counter() - started,
            )
    names: list[str | None] = list(options.split) if options.split else [None]
    targets: dict[str | None, Path] = {None: out}
    if options.split:
        targets = {name: path for name, path in split_paths(out, list(options.split)).items()}
    lexicon = (options.lexicon or load_lexicon()) if options.clean else []
    skipped: Counter[str] = Counter()
    counts: Counter[str | None] = Counter()
    encoder = msgspec.json.Encoder()
    temps: dict[str | None, Path] = {}
    handles = {}
    exported = 0
    candidates = _candidates(engines, options)
    try:
        for name in names:
            target = targets[name]
            temps[name] = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            handles[name] = open(temps[name], "wb")  # noqa: SIM115 - closed in finally
        for i, stream_id in enumerate(candidates):
            view = fold_session(store.read_stream(stream_id), stream_id)
            if options.clean:
                audit = audit_session(view, lexicon)
                rules = {f.rule for f in audit.findings}
                if options.render.redact:
                    rules.discard("secret_leak")  # redacted below, so no longer a leak
                if rules:
                    skipped["flagged by audit"] += 1
                    continue
            try:
                samples = render(view, options.render)
            except Unrepresentable:
                skipped[f"not expressible in {options.render.format}"] += 1
                continue
            if not samples:
                skipped["no assistant message"] += 1
                continue
            name = split_of(view.session_id, options.seed, options.split) if options.split else None
            handle = handles[name]
            for sample in samples:
                handle.write(encoder.encode(sample))
                handle.write(b"\n")
            counts[name] += len(samples)
            exported += 1
            if progress is not None:
                progress(i + 1, len(candidates))
        for handle in handles.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for name in names:
            os.replace(temps[name], targets[name])
    finally:
        for handle in handles.values():
            handle.close()
        for temp in temps.values():
            if temp.exists():
                temp.unlink()
    files = [
        OutputFile(
            path=str(targets[name]),
            samples=counts[name],
            bytes=targets[name].stat().st_size,
            split=name,
        )
        for name in names
    ]
    _save_manifest(engines, out, digest, caught.position, files)
    return ExportReport(
        files=files,
        sessions_considered=len(candidates),
        sessions_exported=exported,
        samples=sum(counts.values()),
        skipped=dict(skipped),
        seconds=time.perf_counter() - started,
    )
