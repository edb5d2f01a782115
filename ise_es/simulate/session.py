"""Recording one session: user simulator <-> agent, tools executed for real, every event
appended to the session stream as it happens."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ise_es.errors import ConfigError, LeaseLost
from ise_es.events import (
    Event,
    ModelSpec,
    SessionEnded,
    SessionStarted,
)
from ise_es.llm.base import ChatClient, failed_model_call
from ise_es.sandbox import Sandbox, open_sandbox, pinned_environment
from ise_es.simulate.agent import SCRIPTED_BASE_URL, AgentLoop, recorded_call
from ise_es.simulate.run_modes import NO_REPLY, Segment, SessionUser
from ise_es.simulate.user_simulator import DialogueEntry, SimulatorTurn, UserSimulator
from ise_es.store.base import EventStore, Fence, NewEvent
from ise_es.tools import SessionNamer, ToolRunner, WebGateway, default_registry
from ise_es.web.settings import WebSettings

__all__ = ["SessionControl", "SessionPlan", "SessionResult", "StreamWriter", "record_session"]

FLUSH_EVENTS = 64
FLUSH_SECONDS = 0.05


class StreamWriter:
    """Appends to one stream with optimistic concurrency, grouping what happens within
    `max_delay` seconds into one transaction.

    A quick tool call (started, output, finished, file diff) lands as one append instead of
    four, while a long-running command's events still reach the store within `max_delay` of
    happening: a background timer flushes whatever is pending. A kill -9 can lose at most that
    window, and the session is then closed `interrupted` on the next run anyway.

    Event ids are derived from the stream id and version, so a retried append is a no-op.
    """

    def __init__(
        self,
        store: EventStore,
        stream_id: str,
        *,
        version: int = 0,
        max_delay: float = FLUSH_SECONDS,
        max_pending: int = FLUSH_EVENTS,
        fence: Fence | None = None,
        on_event: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = store
        self.on_event = on_event
        """Called with each recorded event once it is queued (or appended, when that was due)."""
        self.stream_id = stream_id
        self.fence = fence
        """The work-item lease every append must still hold (the store checks it)."""
        self.version = version
        self.max_delay = max_delay
        self.max_pending = max_pending
        self._pending: list[Event] = []
        self._pending_blobs: list[bytes] = []
        self._timer: threading.Timer | None = None
        self._failure: BaseException | None = None
        self.append_latencies: list[float] = []
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()

    def emit(self, event: Event) -> None:
        """The tool runner's callback."""
        self.record([event], [])

    def put_blob(self, data: bytes) -> str:
        """A BlobSink for the sandbox and the tools: the bytes ride along with the next append,
        in the same transaction as the event that cites them."""
        self.record([], [data])
        return hashlib.sha256(data).hexdigest()

    def record(self, events: Sequence[Event], blobs: Sequence[bytes]) -> None:
        with self._lock:
            self._raise_failure()
            self._pending.extend(events)
            self._pending_blobs.extend(blobs)
            urgent = len(self._pending) >= self.max_pending or self.max_delay <= 0
            if not urgent and self._timer is None:
                self._timer = threading.Timer(self.max_delay, self._flush_from_timer)
                self._timer.daemon = True
                self._timer.start()
        if urgent:
            self.flush()
        if self.on_event is not None:
            for e in events:
                self.on_event(e)

    def flush(self) -> None:
        """Append everything pending now (and surface a failed background flush)."""
        with self._lock:
            self._raise_failure()
        self._flush()

    def _flush_from_timer(self) -> None:
        try:
            self._flush()
        except BaseException as e:  # re-raised in the recording thread at its next call
            with self._lock:
                self._failure = e

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    def _flush(self) -> None:
        # Appends are serialised by _io_lock (they must land in order), but the append itself
        # runs outside _lock, so the recording thread keeps queueing events while the timer's
        # transaction waits for its fsync. Lock order: _io_lock, then _lock.
        with self._io_lock:
            with self._lock:
                if self._timer is not None:
                    self._timer.cancel()
                    self._timer = None
                events, blobs = self._pending, self._pending_blobs
                self._pending, self._pending_blobs = [], []
            if not events and not blobs:
                return
            batch = [
                NewEvent(e, event_id=f"{self.stream_id}:{self.version + i + 1}")
                for i, e in enumerate(events)
            ]
            started = time.perf_counter()
            try:
                result = self.store.append(
                    self.stream_id, batch, self.version, blobs=blobs, fence=self.fence
                )
            except BaseException:
                with self._lock:  # nothing was written: put it back, in order, for a retry
                    self._pending[:0], self._pending_blobs[:0] = events, blobs
                raise
            self.append_latencies.append(time.perf_counter() - started)
            self.version = result.version


@dataclass(frozen=True)
class SessionPlan:
    """Everything needed to record one session."""

    intent_id: str
    intent: str
    agent: ChatClient
    user: ChatClient | None
    """None: no user simulator (every segment is a query that goes to the agent as is)."""
    template: str = "empty"
    backend: str = "local"
    persona: Mapping[str, Any] | None = None
    intent_record: Mapping[str, Any] = field(default_factory=dict)
    scenario: str | None = None
    system_prompt: str = ""
    max_turns: int = 12
    max_steps_per_turn: int = 30
    attempt: int = 1
    seed: int = 0
    environment: Mapping[str, str] = field(default_factory=dict)
    sandbox_options: Mapping[str, Any] = field(default_factory=dict)
    segments: tuple[Segment, ...] = ()
    """The intents the session works through, in order (run_modes.py); empty: the one intent
    above, simulated."""
    web: WebSettings = field(default_factory=WebSettings)
    """How the web tools reach the web (fixture, live through the egress policy, or off: no
    web tools offered); recorded in SessionStarted.web."""


_WEB_TOOLS = ("web_search", "web_fetch")


def _tool_runner(
    plan: SessionPlan, sandbox: Sandbox, writer: StreamWriter, web: WebGateway | None
) -> ToolRunner:
    """With the web off the agent is not offered web tools at all (rather than tools that always
    fail), and replay, which offers the recorded tool set, does the same."""
    registry = default_registry()
    if plan.web.mode == "off":
        registry = registry.subset(n for n in registry.names() if n not in _WEB_TOOLS)
    return ToolRunner(
        sandbox, writer, web, writer.emit, registry=registry, name_factory=SessionNamer(plan.seed)
    )


@dataclass
class SessionResult:
    session_id: str
    status: str
    reason: str
    user_turns: int
    tool_calls: int
    seconds: float
    append_latencies: list[float]
    infrastructure: bool = False
    """Ended for a reason outside the models' behaviour (see SessionEnded.infrastructure)."""
    lease_lost: bool = False
    """The store refused an append because the work item's lease was reclaimed: the session
    stopped where it was and its end is written by whoever reclaimed it."""


class SessionControl:
    """Stops one session from another thread: sets the flag the recorder checks between steps
    and kills whatever its sandbox runs now, so a Ctrl-C or a lost lease never waits for a tool
    (a `sleep 30` in a tool ends at once)."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()
        self.reason = ""
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    def attach(self, sandbox: Sandbox) -> None:
        with self._lock:
            self._sandbox = sandbox
            stop_now = self.cancelled.is_set()
        if stop_now:
            sandbox.kill_running()

    def cancel(self, reason: str) -> None:
        with self._lock:
            if not self.cancelled.is_set():
                self.reason = reason
            self.cancelled.set()
            sandbox = self._sandbox
        if sandbox is not None:
            sandbox.kill_running()


def record_session(
    store: EventStore,
    plan: SessionPlan,
    *,
    session_id: str | None = None,
    gateway: WebGateway | None = None,
    on_event: Callable[[Event], None] | None = None,
    sandbox_factory: Callable[..., Sandbox] = open_sandbox,
    control: SessionControl | None = None,
    fence: Fence | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> SessionResult:
    """Record one session end to end. Never leaves a sandbox behind.

    `gateway`: the web to use (the caller keeps it open and closes it); None opens one for this
    session from `plan.web` and closes it at the end.

    `control` stops the session from another thread (it then ends `interrupted`); `fence` is
    the work-item lease every append must hold: once it is lost the session stops where it is
    and writes nothing more. `provenance` is added to SessionStarted.provenance.

    Ctrl-C (KeyboardInterrupt) ends the session `interrupted` and re-raises.
    """
    sid = session_id or uuid.uuid4().hex[:16]
    writer = StreamWriter(store, f"session-{sid}", fence=fence, on_event=on_event)
    started = time.monotonic()
    recording = _Recording(sid, plan, writer, control or SessionControl(), gateway)
    end = recording.end
    try:
        agent = recording.start(sandbox_factory, provenance)
        recording.converse(agent)
    except KeyboardInterrupt:
        end.stop("interrupted", "recording interrupted (Ctrl-C)", infrastructure=True)
        raise
    except LeaseLost as e:
        end.status, end.reason, end.lease_lost = "interrupted", str(e), True
    except Exception as e:  # the session ends `error`; the run goes on with the next one
        if recording.control.cancelled.is_set():  # a tool killed by the stop fails its own way
            end.stop("interrupted", recording.control.reason, infrastructure=True)
        else:
            end.stop("error", f"{type(e).__name__}: {e}", infrastructure=True)
    finally:
        recording.finish()
    return SessionResult(
        sid,
        end.status,
        end.reason,
        end.turns,
        end.calls,
        time.monotonic() - started,
        writer.append_latencies,
        infrastructure=end.infrastructure,
        lease_lost=end.lease_lost,
    )


@dataclass
class _End:
    """How a session being recorded has ended so far (SessionEnded's fields)."""

    status: str = "error"
    reason: str = ""
    turns: int = 0
    calls: int = 0
    infrastructure: bool = False
    lease_lost: bool = False

    def stop(self, status: str, reason: str, *, infrastructure: bool = False) -> None:
        self.status, self.reason, self.infrastructure = status, reason, infrastructure

    def event(self) -> SessionEnded:
        return SessionEnded(
            status=self.status,  # type: ignore[arg-type]
            reason=self.reason,
            user_turns=self.turns,
            tool_calls=self.calls,
            infrastructure=self.infrastructure,
        )


class _Recording:
    """One session being recorded: what it holds open, its dialogue, and how it ended."""

    def __init__(
        self,
        sid: str,
        plan: SessionPlan,
        writer: StreamWriter,
        control: SessionControl,
        gateway: WebGateway | None,
    ) -> None:
        from ise_es.simulate.prompting import default_agent_system_prompt

        self.sid, self.plan, self.writer, self.control = sid, plan, writer, control
        self.end = _End()
        self.system_prompt = plan.system_prompt or default_agent_system_prompt()
        self.environment = pinned_environment(plan.environment)
        self.own_gateway = gateway is None
        self.web = gateway if gateway is not None else plan.web.open_gateway()
        self.sandbox: Sandbox | None = None
        self.runner: ToolRunner | None = None
        self.started_written = False
        self.segments = plan.segments or (
            Segment(plan.intent_id, plan.intent, simulated=True, record=plan.intent_record),
        )
        self.user = SessionUser(self.segments, lambda segment: _simulator(plan, segment))
        # The user's first message needs no sandbox: ask for it while the sandbox starts, so a
        # model-bound session does not wait for both one after the other.
        self.first_turn = _Ahead(lambda: self.user.next_turn([]))

    def start(
        self, sandbox_factory: Callable[..., Sandbox], provenance: Mapping[str, Any] | None
    ) -> AgentLoop:
        """Open the sandbox and the tools, write SessionStarted, and return the agent."""
        plan = self.plan
        self.sandbox = sandbox_factory(
            plan.backend,
            plan.template,
            blobs=self.writer,
            environment=self.environment,
            **dict(plan.sandbox_options),
        )
        self.control.attach(self.sandbox)
        self.runner = _tool_runner(plan, self.sandbox, self.writer, self.web)
        self.writer.record([self._started(self.sandbox, self.runner, provenance)], [])
        self.writer.flush()
        self.started_written = True
        return AgentLoop(
            plan.agent,
            self.runner,
            self.system_prompt,
            self.writer.record,
            max_steps_per_turn=plan.max_steps_per_turn,
            cancel=self.control.cancelled,
        )

    def _started(
        self, sandbox: Sandbox, runner: ToolRunner, provenance: Mapping[str, Any] | None
    ) -> SessionStarted:
        """SessionStarted once the sandbox runs: what was attempted plus how it is set up."""
        plan = self.plan
        return msgspec.structs.replace(
            _attempted(self.sid, plan),
            persona=dict(plan.persona) if plan.persona else None,
            models=[_spec(c) for c in (plan.agent, plan.user) if c is not None],
            intents=_described(self.segments),
            system_prompt=self.system_prompt,
            tool_schemas=runner.schemas(),
            sandbox_backend=sandbox.backend,
            template=sandbox.template,
            template_digest=sandbox.template_digest,
            seeds={"session": plan.seed},
            environment=self.environment,
            provenance={
                "recorder": "ise-es",
                "simulator_prompt": "user_simulator.md",
                **dict(provenance or {}),
            },
        )

    def turn_cap(self) -> int:
        """max_turns for each simulated segment, one turn for each plain query."""
        simulated = sum(s.simulated for s in self.segments)
        return self.plan.max_turns * simulated + (len(self.segments) - simulated)

    def converse(self, agent: AgentLoop) -> None:
        """User turn, agent turn, ... until the user is done, a turn fails, the cap or a stop."""
        cap = self.turn_cap()
        dialogue: list[DialogueEntry] = []
        self.end.stop("turn_cap", f"reached the turn cap of {cap} user turns")
        for turn in range(1, cap + 2):
            if self.control.cancelled.is_set():
                self.end.stop("interrupted", self.control.reason, infrastructure=True)
                return
            sim = self.first_turn.take() if turn == 1 else self.user.next_turn(dialogue)
            if not self._user_turn(sim) or turn > cap:
                return
            self.end.turns += 1
            dialogue.append(DialogueEntry("user", sim.query))
            if not self._agent_turn(agent, turn, sim.query):
                return
            dialogue.append(DialogueEntry("assistant", _last_reply(agent.messages) or NO_REPLY))

    def _user_turn(self, sim: SimulatorTurn) -> bool:
        """Record the simulator's turn; False when the dialogue ends with it."""
        closed: list[Event] = list(self.user.take_closed())
        calls, blobs = _calls_of(sim)
        if not sim.ok:
            self.writer.record([*calls, *closed], blobs)
            reason = sim.error or str(sim.llm_error)
            if sim.raw:
                reason += f" (raw simulator output: {sim.raw[:500]!r})"
            self.end.stop("error", reason, infrastructure=sim.llm_error is not None)
            return False
        self.writer.record([*calls, *closed, self.user.user_turn(sim)], blobs)
        if sim.completed:
            self.end.stop("completed", sim.reason or "the user is satisfied")
            return False
        return True

    def _agent_turn(self, agent: AgentLoop, turn: int, query: str) -> bool:
        """Run the agent on the user's message; False when the dialogue ends with it."""
        outcome = agent.run_turn(turn, query)
        self.end.calls += outcome.tool_calls
        if outcome.status not in ("stalled", "error", "interrupted"):
            return True
        reason = outcome.reason
        if outcome.status == "interrupted":
            reason = self.control.reason or reason
        self.end.stop(outcome.status, reason, infrastructure=outcome.infrastructure)
        return False

    def finish(self) -> None:
        """Write how the session ended (unless its lease was lost), then close what it opened."""
        try:
            if not self.end.lease_lost:
                self._write_end()
        except LeaseLost:
            self.end.lease_lost = True  # fenced out: the reclaiming worker writes the end
        finally:
            if self.runner is not None:
                self.runner.close()
            if self.sandbox is not None:
                self.sandbox.close()
            if self.own_gateway and self.web is not None:
                self.web.close()

    def _write_end(self) -> None:
        self.writer.flush()
        if not self.started_written:
            # The sandbox (or something before it) failed: the stream still says what was
            # attempted before it says how it ended.
            self.writer.record([_attempted(self.sid, self.plan)], [])
        if not self.first_turn.taken and not self.control.cancelled.is_set():
            # The session ended before its first turn was used (the sandbox failed): the
            # model was asked all the same, so its calls are recorded. A stopped session
            # does not wait for that answer (Ctrl-C must not wait on the model).
            self.writer.record(*_calls_of(self.first_turn.take_quietly()))
        self.writer.record([self.end.event()], [])
        self.writer.flush()


def _attempted(sid: str, plan: SessionPlan) -> SessionStarted:
    """What a session set out to do, known before its sandbox starts (all a stream says of its
    start when the sandbox failed)."""
    return SessionStarted(
        session_id=sid,
        intent_id=plan.intent_id,
        intent=plan.intent,
        intent_record=dict(plan.intent_record),
        scenario=plan.scenario,
        sandbox_backend=plan.backend,
        template=plan.template,
        attempt=plan.attempt,
        web=plan.web.spec(),
    )


def _last_reply(messages: Sequence[Mapping[str, Any]]) -> str:
    """The agent's last non-empty assistant message ("" when it said nothing)."""
    return next(
        (m["content"] for m in reversed(messages) if m["role"] == "assistant" and m.get("content")),
        "",
    )


class _Ahead:
    """A call started now on a thread of its own, its result taken later (once)."""

    def __init__(self, fn: Callable[[], SimulatorTurn]) -> None:
        self._fn = fn
        self._result: SimulatorTurn | None = None
        self._error: BaseException | None = None
        self.taken = False
        self._thread = threading.Thread(target=self._run, name="first-turn", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._fn()
        except BaseException as e:  # re-raised where the result is taken
            self._error = e

    def take(self) -> SimulatorTurn:
        self.taken = True
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def take_quietly(self) -> SimulatorTurn | None:
        try:
            return self.take()
        except Exception:
            return None


def _calls_of(turn: SimulatorTurn | None) -> tuple[list[Event], list[bytes]]:
    """The ModelCall events (and request blobs) of a simulator turn that was not used."""
    if turn is None:
        return [], []
    events: list[Event] = [recorded_call(c) for c in turn.calls]
    if turn.llm_error is not None:
        events.append(failed_model_call(turn.llm_error))
    return events, [c.request_body for c in turn.calls]


def _simulator(plan: SessionPlan, segment: Segment) -> UserSimulator:
    if plan.user is None:
        raise ConfigError(f"intent {segment.intent_id} needs a user simulator model (--user-model)")
    return UserSimulator(
        plan.user, persona=plan.persona, intent=segment.text, max_turns=plan.max_turns
    )


def _described(segments: tuple[Segment, ...]) -> list[dict[str, Any]]:
    """SessionStarted.intents: only when the session is not the classic one simulated intent."""
    if len(segments) == 1 and segments[0].simulated:
        return []
    return [s.describe() for s in segments]


def _spec(client: ChatClient) -> ModelSpec:
    spec = client.config.model_spec()
    if client.config.base_url == SCRIPTED_BASE_URL:
        return msgspec.structs.replace(spec, backend="scripted", base_url=None)
    return spec
