"""Comparing one replayed tool call with its recording, field by field.

Fields: exit code, signal, timed_out, stdout, stderr, the result text the agent saw, the web
exchanges, and the workspace changes (path, kind, mode, content digest, link target). Outputs are
compared by digest first (equal digests: identical, no blob read), then as text through the
normalizers. Something the comparison needs but the store does not have (an output or file blob,
a recorded web response) makes the field `missing`, never silently equal.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from ise_es.errors import BlobNotFound
from ise_es.events import FileChange, HttpExchange, OutputChunk, ToolCallFinished
from replay.model import Difference, Verdict, Where
from replay.normalize import NormalizerSet
from replay.recorded import RecordedStep

__all__ = ["ReplayedStep", "StepComparator", "StepComparison", "unified_diff"]

MAX_DIFF_LINES = 200
MAX_WHERE = 5
MAX_LINE_CHARS = 300
MAX_CONTENT_DIFF_BYTES = 256 * 1024
"""File contents larger than this are compared by digest only (no text diff)."""


@dataclass
class ReplayedStep:
    """What re-executing one call produced, as the tool runner emitted it."""

    chunks: list[OutputChunk] = field(default_factory=list)
    http: list[HttpExchange] = field(default_factory=list)
    finished: ToolCallFinished | None = None
    changes: list[FileChange] = field(default_factory=list)
    blobs: Mapping[str, bytes] = field(default_factory=dict)
    """Blobs the sandbox and tools stored while the call ran, by digest."""
    missing_responses: list[str] = field(default_factory=list)
    """Web requests the recording has no response for ('GET url')."""
    missing_inputs: list[str] = field(default_factory=list)
    """Recorded inputs (web bodies) whose blobs are not in the store."""

    def output(self, stream: str) -> bytes:
        return b"".join(c.data for c in self.chunks if c.stream == stream)


@dataclass(frozen=True)
class StepComparison:
    verdict: Verdict
    differences: list[Difference]
    normalizers_fired: list[str]


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "..."


def _text(data: bytes) -> str:
    # backslashreplace keeps distinct bytes distinct and the result JSON-safe.
    return data.decode("utf-8", "backslashreplace")


def unified_diff(recorded: str, replayed: str, *, label: str = "") -> str:
    """A unified diff, recorded -> replayed, capped at MAX_DIFF_LINES lines."""
    suffix = f" {label}" if label else ""
    lines = list(
        difflib.unified_diff(
            recorded.splitlines(),
            replayed.splitlines(),
            fromfile="recorded" + suffix,
            tofile="replayed" + suffix,
            n=2,
            lineterm="",
        )
    )
    if not lines and recorded != replayed:
        # Only the trailing newline differs: splitlines() cannot see it.
        lines = [
            f"--- recorded{suffix}",
            f"+++ replayed{suffix}",
            f"(texts differ only in line endings: recorded ends {recorded[-1:]!r}, "
            f"replayed ends {replayed[-1:]!r})",
        ]
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        lines = [*lines[:MAX_DIFF_LINES], f"... ({more} more diff lines)"]
    return "\n".join(_clip(line) for line in lines)


def _verdict(differences: Sequence[Difference], missing_inputs: bool) -> Verdict:
    statuses = {d.status for d in differences}
    if missing_inputs:
        return "missing"
    if "diverged" in statuses:
        return "diverged"
    if "missing" in statuses:
        return "missing"
    if "equivalent" in statuses:
        return "equivalent"
    return "identical"


def _describe(change: FileChange | None) -> str:
    if change is None:
        return "(not changed)"
    parts: list[str] = [change.kind]
    if change.mode is not None:
        parts.append(f"mode {change.mode:o}")
    if change.link_target is not None:
        parts.append(f"-> {change.link_target}")
    if change.digest is not None:
        parts.append(f"size {change.size} sha256 {change.digest[:16]}")
    return " ".join(parts)


class StepComparator:
    """Compares steps with one set of normalizers; `recorded_blob` reads the source store."""

    def __init__(self, normalizers: NormalizerSet, recorded_blob: Callable[[str], bytes]) -> None:
        self.normalizers = normalizers
        self._blob = recorded_blob

    # ------------------------------------------------------------------ texts

    def compare_text(self, name: str, recorded: str, replayed: str) -> Difference | None:
        if recorded == replayed:
            return None
        if not self.normalizers:
            return Difference(field=name, status="diverged", diff=unified_diff(recorded, replayed))
        a, b = self.normalizers.apply(recorded), self.normalizers.apply(replayed)
        fired = sorted(set(a.fired) | set(b.fired))
        if a.text != b.text:
            return Difference(
                field=name,
                status="diverged",
                diff=unified_diff(a.text, b.text, label="(normalized)" if fired else ""),
                normalizers=fired,
            )
        raw_a, raw_b = recorded.split("\n"), replayed.split("\n")
        where: list[Where] = []
        used: set[str] = set()
        for i, (line_a, line_b) in enumerate(zip(raw_a, raw_b, strict=False)):
            if line_a == line_b:
                continue
            names = sorted(n for n in fired if i in a.fired.get(n, ()) or i in b.fired.get(n, ()))
            used.update(names)
            if len(where) < MAX_WHERE:
                where.append(
                    Where(
                        line=i + 1,
                        recorded=_clip(line_a),
                        replayed=_clip(line_b),
                        normalizers=names,
                    )
                )
        return Difference(
            field=name, status="equivalent", normalizers=sorted(used) or fired, where=where
        )

    # ------------------------------------------------------------------ outputs

    def _recorded_output(
        self, rec: RecordedStep, stream: str, digest: str | None, size: int
    ) -> bytes | str:
        """The recorded bytes, or a reason why they are not available."""
        head = rec.output(stream)
        if digest is None:
            return head
        try:
            return self._blob(digest)
        except BlobNotFound:
            if len(head) == size:
                return head
            return (
                f"the recorded {stream} blob {digest} ({size} bytes) is not in the store and "
                f"only its first {len(head)} bytes were recorded as chunks"
            )

    def compare_stream(
        self, stream: str, rec: RecordedStep, rep: ReplayedStep
    ) -> Difference | None:
        assert rec.finished is not None and rep.finished is not None
        rd: str | None = getattr(rec.finished, f"{stream}_digest")
        rs: int = getattr(rec.finished, f"{stream}_size")
        pd: str | None = getattr(rep.finished, f"{stream}_digest")
        ps: int = getattr(rep.finished, f"{stream}_size")
        if rd is not None and rd == pd:
            return None
        if rd is None and pd is None and rec.output(stream) == rep.output(stream):
            return None
        recorded = self._recorded_output(rec, stream, rd, rs)
        if isinstance(recorded, str):
            return Difference(field=stream, status="missing", note=recorded)
        head = rep.output(stream)
        replayed: bytes | None = head
        if pd is not None:
            replayed = rep.blobs.get(pd, head if len(head) == ps else None)
        if replayed is None:
            return Difference(
                field=stream,
                status="diverged",
                recorded=f"sha256 {rd} ({rs} bytes)",
                replayed=f"sha256 {pd} ({ps} bytes)",
                note="the replayed output is over the blob cap: compared by digest only",
            )
        if recorded == replayed:
            return None
        diff = self.compare_text(stream, _text(recorded), _text(replayed))
        if diff is not None and diff.status == "diverged" and pd is not None:
            diff = msgspec.structs.replace(diff, replayed_digest=pd)
        return diff

    # ------------------------------------------------------------------ files

    def _content(self, change: FileChange, blobs: Mapping[str, bytes] | None) -> bytes | None:
        if change.digest is None or (change.size or 0) > MAX_CONTENT_DIFF_BYTES:
            return None
        if blobs is not None:
            return blobs.get(change.digest)
        if not change.stored:
            return None
        try:
            return self._blob(change.digest)
        except BlobNotFound:
            return None

    def compare_changes(self, rec: RecordedStep, rep: ReplayedStep) -> list[Difference]:
        recorded = {c.path: c for c in rec.changes}
        replayed = {c.path: c for c in rep.changes}
        out: list[Difference] = []
        for path in sorted(recorded.keys() | replayed.keys()):
            r, p = recorded.get(path), replayed.get(path)
            name = f"fs:{path}"
            if r is not None and p is not None:
                same_meta = (r.kind, r.mode, r.link_target) == (p.kind, p.mode, p.link_target)
                same_content = r.digest == p.digest and (r.digest is not None or r.size == p.size)
                if same_meta and same_content:
                    continue
                if same_meta and r.digest and p.digest:
                    out.append(self._content_difference(name, r, p, rep))
                    continue
            out.append(
                Difference(
                    field=name,
                    status="diverged",
                    recorded=_describe(r),
                    replayed=_describe(p),
                    replayed_digest=p.digest if p is not None else None,
                )
            )
        return out

    def _content_difference(
        self, name: str, r: FileChange, p: FileChange, rep: ReplayedStep
    ) -> Difference:
        a, b = self._content(r, None), self._content(p, rep.blobs)
        if a is None or b is None:
            side = "recorded" if a is None else "replayed"
            return Difference(
                field=name,
                status="diverged",
                recorded=_describe(r),
                replayed=_describe(p),
                note=f"the {side} content is not available (not stored, or too large to diff): "
                "compared by digest only",
                replayed_digest=p.digest,
            )
        diff = self.compare_text(name, _text(a), _text(b))
        assert diff is not None  # different digests, so different bytes
        if diff.status == "diverged":
            diff = msgspec.structs.replace(
                diff, recorded=_describe(r), replayed=_describe(p), replayed_digest=p.digest
            )
        return diff

    # ------------------------------------------------------------------ web

    def compare_http(self, rec: RecordedStep, rep: ReplayedStep) -> list[Difference]:
        out: list[Difference] = []
        if rep.missing_responses:
            out.append(
                Difference(
                    field="http",
                    status="missing",
                    note="no recorded response for "
                    + ", ".join(rep.missing_responses)
                    + " (replay never goes to the network)",
                )
            )
        if rep.missing_inputs:
            out.append(
                Difference(
                    field="http",
                    status="missing",
                    note="recorded response bodies not in the store: "
                    + ", ".join(rep.missing_inputs),
                )
            )
        if out:
            return out

        def lines(exchanges: list[HttpExchange]) -> str:
            return "\n".join(
                f"{e.method} {e.url} -> {e.status} {e.body_digest or '-'} {e.error or ''}".rstrip()
                for e in exchanges
            )

        a, b = lines(rec.http), lines(rep.http)
        if a != b:
            out.append(Difference(field="http", status="diverged", diff=unified_diff(a, b)))
        return out

    # ------------------------------------------------------------------ step

    def compare(self, rec: RecordedStep, rep: ReplayedStep) -> StepComparison:
        differences: list[Difference] = []
        if rec.finished is None:
            differences.append(
                Difference(
                    field="recording",
                    status="missing",
                    note="the recording has no ToolCallFinished for this call",
                )
            )
            return StepComparison("missing", differences, [])
        if rep.finished is None:
            differences.append(
                Difference(
                    field="recording",
                    status="diverged",
                    note="the replayed call did not finish (the runner raised)",
                )
            )
            return StepComparison("diverged", differences, [])
        rf, pf = rec.finished, rep.finished
        for name, a, b in (
            ("exit_code", rf.exit_code, pf.exit_code),
            ("signal", rf.signal, pf.signal),
            ("timed_out", rf.timed_out, pf.timed_out),
        ):
            if a != b:
                differences.append(
                    Difference(field=name, status="diverged", recorded=str(a), replayed=str(b))
                )
        for stream in ("stdout", "stderr"):
            d = self.compare_stream(stream, rec, rep)
            if d is not None:
                differences.append(d)
        d = self.compare_text("result_text", rf.result_text, pf.result_text)
        if d is not None:
            differences.append(d)
        differences.extend(self.compare_http(rec, rep))
        differences.extend(self.compare_changes(rec, rep))
        fired = sorted({n for d in differences if d.status == "equivalent" for n in d.normalizers})
        verdict = _verdict(differences, bool(rep.missing_responses or rep.missing_inputs))
        return StepComparison(verdict, differences, fired)
