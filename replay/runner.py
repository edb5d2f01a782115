"""Replaying one recorded session: every tool call re-executed, in order, with its recorded
arguments, in a fresh sandbox restored from the same template, and compared with the log.

The agent and the user simulator are never called. Web tools are answered from the session's
recorded exchanges (the sandbox network stays off); the recorded environment (TZ, locale,
SOURCE_DATE_EPOCH) and the recorded seed (process session names) are passed back. The source
stream is only read; the replay appends its own `replay-<id>` stream.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ise_es.errors import BlobNotFound, ConfigError, SandboxError, TemplateError
from ise_es.events import (
    Event,
    FsDiff,
    HttpExchange,
    OutputChunk,
    ReplayEnded,
    ReplayStarted,
    StepReplayed,
    ToolCall,
    ToolCallFinished,
)
from ise_es.sandbox import BACKENDS, Sandbox, Template, load_template, open_sandbox
from ise_es.store.base import EventStore
from ise_es.tools import RecordedWebGateway, SessionNamer, ToolRegistry, ToolRunner, WebResponse
from ise_es.tools.catalog import default_registry
from replay.compare import ReplayedStep, StepComparator
from replay.model import Difference, ReplayReport, StepResult
from replay.normalize import DEFAULT_NORMALIZERS, NormalizerSet
from replay.recorded import RecordedSession, RecordedStep, load_session
from replay.stream import ReplayWriter

__all__ = ["ReplayOptions", "replay_recorded", "replay_session"]


@dataclass(frozen=True)
class ReplayOptions:
    backend: str | None = None
    """Sandbox backend; None replays on the recorded one."""
    templates_dir: str | None = None
    """Where template names are looked up first (default: ./fixtures/templates), before the
    shipped ones (`ise_es.sandbox.templates.template_search_path`)."""
    allow_template_change: bool = False
    """Replay even when the template's digest differs from the recorded one (noted in the
    report) instead of refusing."""
    normalizers: Sequence[str] = DEFAULT_NORMALIZERS
    hostnames: Sequence[str] | None = None
    """Host names for the `hostnames` normalizer (default: this machine's)."""
    stop_at_first: bool = False
    sandbox_options: Mapping[str, Any] = field(default_factory=dict)
    """Passed to `open_sandbox` (e.g. the docker `client`)."""


class _StepBlobs:
    """The replay's blob sink: what the sandbox and tools store while one call runs, kept in
    memory for the comparison, then dropped (only diverged outputs go to the store)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = data
        return digest

    def take(self) -> dict[str, bytes]:
        blobs, self.blobs = self.blobs, {}
        return blobs


class _Gateway:
    """The recorded web, noting what the recording cannot answer."""

    name = "recorded"

    def __init__(self, exchanges: list[HttpExchange], get_blob: Callable[[str], bytes]) -> None:
        self.missing_responses: list[str] = []
        self.missing_inputs: list[str] = []

        def body(digest: str) -> bytes:
            try:
                return get_blob(digest)
            except BlobNotFound:
                self.missing_inputs.append(digest)
                raise

        self._inner = RecordedWebGateway(exchanges, body)

    def request(self, method: str, url: str, *, call_id: str) -> WebResponse:
        try:
            response = self._inner.request(method, url, call_id=call_id)
        except BlobNotFound:
            return WebResponse(
                url=url, status=0, error=f"the recorded body of {method} {url} is not in the store"
            )
        if response.status == 0 and (response.error or "").startswith("no recorded response"):
            self.missing_responses.append(f"{method} {url}")
        return response

    def take(self) -> tuple[list[str], list[str]]:
        out = (self.missing_responses, self.missing_inputs)
        self.missing_responses, self.missing_inputs = [], []
        return out

    def close(self) -> None:
        pass


class _Collector:
    """The tool runner's `emit`: sorts one call's events into a ReplayedStep."""

    def __init__(self) -> None:
        self.step = ReplayedStep()
        self.call_id = ""

    def reset(self, call_id: str) -> None:
        self.step = ReplayedStep()
        self.call_id = call_id

    def __call__(self, event: Event) -> None:
        if getattr(event, "call_id", None) != self.call_id:
            return
        if isinstance(event, OutputChunk):
            self.step.chunks.append(event)
        elif isinstance(event, HttpExchange):
            self.step.http.append(event)
        elif isinstance(event, ToolCallFinished):
            self.step.finished = event
        elif isinstance(event, FsDiff):
            self.step.changes.extend(event.changes)


def _registry(session: RecordedSession, notes: list[str]) -> ToolRegistry:
    registry = default_registry()
    names = [
        str(s.get("function", {}).get("name"))
        for s in session.started.tool_schemas
        if isinstance(s, dict)
    ]
    unknown = sorted(set(names) - set(registry.names()))
    if unknown:
        notes.append(
            f"the recording offered tools this ise-es does not have ({', '.join(unknown)}); "
            "replaying with every tool this ise-es knows"
        )
        return registry
    return registry.subset(names) if names else registry


def _resolve_template(
    session: RecordedSession, options: ReplayOptions, report: ReplayReport
) -> Template | str | None:
    """The template to start from, or None after recording why the replay must refuse."""
    started = session.started
    name = started.template or "empty"
    recorded = started.template_digest
    if name.startswith("image:"):
        return name
    try:
        template = load_template(name, templates_dir=options.templates_dir)
    except TemplateError as e:
        report.reason = f"cannot replay session {session.session_id}: {e}"
        return None
    report.template_digest = template.digest
    if not recorded:
        report.notes.append(
            "the recording names no template digest: the workspace it ran in cannot be checked"
        )
    elif template.digest != recorded:
        message = (
            f"template {name!r} ({template.path}) has digest {template.digest}, but session "
            f"{session.session_id} was recorded with digest {recorded}"
        )
        if not options.allow_template_change:
            report.reason = (
                f"{message}: its files changed since the recording. Restore them, or pass "
                "--allow-template-change to replay anyway and report the differences"
            )
            return None
        report.notes.append(f"{message} (replaying anyway: --allow-template-change)")
    return template


def replay_session(
    store: EventStore,
    session_id: str,
    options: ReplayOptions | None = None,
    *,
    on_step: Callable[[StepResult], None] | None = None,
    sandbox_factory: Callable[..., Sandbox] = open_sandbox,
) -> ReplayReport:
    """Replay one session (id, `session-<id>` or a unique prefix) and record the replay.

    Returns the report; `report.aborted` says the replay could not start or go on (the reason
    is in `report.reason`; nothing is recorded when it could not start).

    Raises:
        InvalidInput: no such session, or the stream is not a session.
    """
    return replay_recorded(
        store,
        load_session(store, session_id),
        options,
        on_step=on_step,
        sandbox_factory=sandbox_factory,
    )


def replay_recorded(
    store: EventStore,
    session: RecordedSession,
    options: ReplayOptions | None = None,
    *,
    on_step: Callable[[StepResult], None] | None = None,
    sandbox_factory: Callable[..., Sandbox] = open_sandbox,
) -> ReplayReport:
    """`replay_session` for a session already read (see there)."""
    options = options or ReplayOptions()
    began = time.monotonic()
    normalizers = NormalizerSet(options.normalizers, hostnames=options.hostnames)
    report = _new_report(session, options, normalizers)
    blobs = _StepBlobs()
    template = _replayable_template(session, options, report)
    sandbox = None
    if template is not None:
        sandbox = _open_sandbox(session, options, report, template, blobs, sandbox_factory)
    if sandbox is None:
        report.aborted = True
        report.seconds = time.monotonic() - began
        return report
    try:
        report.template_digest = sandbox.template_digest
        _run(store, session, options, report, sandbox, blobs, normalizers, on_step)
    finally:
        sandbox.close()
    report.seconds = time.monotonic() - began
    return report


def _new_report(
    session: RecordedSession, options: ReplayOptions, normalizers: NormalizerSet
) -> ReplayReport:
    """The report before anything runs: what was recorded and where it will be replayed."""
    started = session.started
    report = ReplayReport(
        session_id=session.session_id,
        source_stream=session.stream_id,
        source_version=session.version,
        recorded_backend=started.sandbox_backend,
        sandbox_backend=options.backend or started.sandbox_backend or "local",
        template=started.template or "empty",
        recorded_template_digest=started.template_digest,
        normalizers=list(normalizers.names),
    )
    if report.sandbox_backend != started.sandbox_backend:
        report.notes.append(
            f"cross-backend replay: recorded on {started.sandbox_backend or '(unknown)'}, "
            f"replayed on {report.sandbox_backend}"
        )
    return report


def _replayable_template(
    session: RecordedSession, options: ReplayOptions, report: ReplayReport
) -> Template | str | None:
    """The template to replay from, or None after writing in the report why the replay must
    refuse (a session from outside an ise-es sandbox, or a template that is not the same)."""
    if report.sandbox_backend not in BACKENDS:
        report.reason = (
            f"session {session.session_id} ran on {report.sandbox_backend!r}, not in an ise-es "
            f"sandbox (imported?): pass --sandbox ({' or '.join(BACKENDS)}) to replay its calls "
            "there anyway"
        )
        return None
    return _resolve_template(session, options, report)


def _open_sandbox(
    session: RecordedSession,
    options: ReplayOptions,
    report: ReplayReport,
    template: Template | str,
    blobs: _StepBlobs,
    sandbox_factory: Callable[..., Sandbox],
) -> Sandbox | None:
    """A fresh sandbox with the recorded environment, or None with the reason in the report."""
    started = session.started
    try:
        return sandbox_factory(
            report.sandbox_backend,
            template,
            blobs=blobs,
            environment=dict(started.environment),
            expected_digest=(
                started.template_digest or None
                if isinstance(template, str) and not options.allow_template_change
                else None
            ),
            templates_dir=options.templates_dir,
            **dict(options.sandbox_options),
        )
    except (SandboxError, ConfigError) as e:
        report.reason = f"cannot start a {report.sandbox_backend} sandbox: {e}"
        return None


def _run(
    store: EventStore,
    session: RecordedSession,
    options: ReplayOptions,
    report: ReplayReport,
    sandbox: Sandbox,
    blobs: _StepBlobs,
    normalizers: NormalizerSet,
    on_step: Callable[[StepResult], None] | None,
) -> None:
    """Replay every step in `sandbox`, recording the replay stream from start to end (which
    is written even when Ctrl-C stops the replay; the interrupt goes on after it)."""
    writer = _start_stream(store, session, sandbox, normalizers, report)
    gateway = _Gateway([x for s in session.steps for x in s.http], store.get_blob)
    collector = _Collector()
    runner = ToolRunner(
        sandbox,
        blobs,
        gateway,
        collector,
        registry=_registry(session, report.notes),
        name_factory=SessionNamer(session.started.seeds.get("session", 0)),
    )
    steps = _StepLoop(session, options, report, writer, on_step)
    comparator = StepComparator(normalizers, store.get_blob)
    interrupted: BaseException | None = None
    try:
        for position, rec in enumerate(session.steps):
            outcome = _replay_step(rec, runner, collector, gateway, blobs, comparator)
            if not steps.record(position, rec, *outcome):
                break
    except KeyboardInterrupt as e:
        interrupted = e
        report.aborted = True
        report.reason = "the replay was interrupted (Ctrl-C)"
        report.skipped = len(session.steps) - len(report.steps)
    finally:
        runner.close()
    _end_stream(writer, session, report, steps.counts)
    if interrupted is not None:
        raise interrupted


def _start_stream(
    store: EventStore,
    session: RecordedSession,
    sandbox: Sandbox,
    normalizers: NormalizerSet,
    report: ReplayReport,
) -> ReplayWriter:
    """A new `replay-<id>` stream, its ReplayStarted written."""
    replay_id = uuid.uuid4().hex[:16]
    writer = ReplayWriter(store, f"replay-{replay_id}")
    writer.add(
        ReplayStarted(
            replay_id=replay_id,
            source_stream=session.stream_id,
            source_version=session.version,
            sandbox_backend=sandbox.backend,
            template=sandbox.template,
            template_digest=sandbox.template_digest,
            normalizers=list(normalizers.names),
        ),
        flush=True,
    )
    report.replay_id = replay_id
    return writer


class _StepLoop:
    """What each replayed step does to the report and the stream, and whether the replay goes
    on after it."""

    def __init__(
        self,
        session: RecordedSession,
        options: ReplayOptions,
        report: ReplayReport,
        writer: ReplayWriter,
        on_step: Callable[[StepResult], None] | None,
    ) -> None:
        self.total = len(session.steps)
        self.options, self.report, self.writer, self.on_step = options, report, writer, on_step
        self.counts: Counter[str] = Counter()

    def record(
        self,
        position: int,
        rec: RecordedStep,
        result: StepResult,
        stored_blobs: list[bytes],
        failure: str | None,
    ) -> bool:
        """Count, report and record the step; False when the replay stops after it."""
        report = self.report
        after = report.first_divergence is not None
        if after:
            result = _mark_after(result)
        if result.verdict == "diverged" and report.first_divergence is None:
            report.first_divergence = rec.index
        self.counts[result.verdict] += 1
        report.steps.append(result)
        self.writer.add(
            StepReplayed(
                index=rec.index,
                call_id=rec.call_id,
                tool=rec.tool,
                verdict=result.verdict,
                differences=[d.as_event_dict() for d in result.differences],
                normalizers_fired=result.normalizers_fired,
                after_divergence=after,
            ),
            stored_blobs,
        )
        if self.on_step is not None:
            self.on_step(result)
        return self._goes_on(position, rec, result, failure)

    def _goes_on(
        self, position: int, rec: RecordedStep, result: StepResult, failure: str | None
    ) -> bool:
        report = self.report
        if failure is not None:  # the sandbox died: nothing more can run in it
            report.aborted = True
            report.reason = f"the sandbox failed at step {rec.index}: {failure}"
            report.skipped = self.total - position - 1
            return False
        if self.options.stop_at_first and result.verdict == "diverged":
            report.skipped = self.total - position - 1
            if report.skipped:
                report.notes.append(
                    f"--stop-at-first: {report.skipped} later step(s) were not replayed"
                )
            return False
        return True


def _end_stream(
    writer: ReplayWriter, session: RecordedSession, report: ReplayReport, counts: Counter[str]
) -> None:
    """Settle the report's status and write ReplayEnded."""
    if session.unfinished is not None:
        u = session.unfinished
        report.notes.append(
            f"the recording ends inside call {u.index} ({u.tool} {_clip(u.started.arguments)}), "
            "which never finished (the recorder was stopped): the recorded prefix of "
            f"{len(session.steps)} finished call(s) was replayed"
        )
    _finish(report, counts)
    writer.add(
        ReplayEnded(
            status=report.status,
            counts={**dict(counts), **({"skipped": report.skipped} if report.skipped else {})},
            determinism=report.determinism,
            first_divergence=report.first_divergence,
            reason="; ".join(x for x in (report.reason, *report.notes) if x),
        ),
        flush=True,
    )


def _replay_step(
    rec: RecordedStep,
    runner: ToolRunner,
    collector: _Collector,
    gateway: _Gateway,
    blobs: _StepBlobs,
    comparator: StepComparator,
) -> tuple[StepResult, list[bytes], str | None]:
    collector.reset(rec.call_id)
    call = ToolCall(id=rec.call_id, name=rec.tool, arguments=rec.started.arguments)
    t0 = time.perf_counter()
    failure: str | None = None
    try:
        runner.run(call, turn=rec.started.turn, step=rec.started.step, index=rec.index)
    except Exception as e:
        # A dead sandbox (SandboxError), or a bug in a tool: this call has no comparable
        # outcome and nothing after it can be trusted to run in this sandbox.
        failure = f"{type(e).__name__}: {e}"
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    replayed = collector.step
    replayed.blobs = blobs.take()
    replayed.missing_responses, replayed.missing_inputs = gateway.take()
    comparison = comparator.compare(rec, replayed)
    differences = comparison.differences
    if failure is not None:
        differences = [
            *differences,
            Difference(field="sandbox", status="diverged", note=failure),
        ]
    stored = [
        replayed.blobs[d.replayed_digest]
        for d in differences
        if d.replayed_digest is not None and d.replayed_digest in replayed.blobs
    ]
    result = StepResult(
        index=rec.index,
        call_id=rec.call_id,
        tool=rec.tool,
        arguments=rec.started.arguments,
        turn=rec.started.turn,
        verdict="diverged" if failure is not None else comparison.verdict,
        differences=differences,
        normalizers_fired=comparison.normalizers_fired,
        recorded_ms=rec.finished.duration_ms if rec.finished is not None else 0.0,
        replayed_ms=elapsed_ms,
    )
    return result, stored, failure


def _mark_after(result: StepResult) -> StepResult:
    return msgspec.structs.replace(result, after_divergence=True)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finish(report: ReplayReport, counts: Counter[str]) -> None:
    checked = sum(counts.values())
    report.counts = {
        k: counts.get(k, 0) for k in ("identical", "equivalent", "diverged", "missing")
    }
    good = counts["identical"] + counts["equivalent"]
    report.determinism = good / checked if checked else (0.0 if report.aborted else 1.0)
    if report.aborted:
        report.status = "failed"
    elif counts["diverged"]:
        report.status = "diverged"
    elif counts["missing"]:
        report.status = "failed"
        report.reason = (
            f"{counts['missing']} step(s) could not be checked: the recording lacks what they "
            "need (see the steps marked missing)"
        )
    elif counts["equivalent"]:
        report.status = "equivalent"
    else:
        report.status = "reproduced"
