"""A recorded session, read back as what replay needs: how it started and, per tool call, what
the log says happened (chunks, web exchanges, the finish, the file changes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ise_es.errors import InvalidInput
from ise_es.events import (
    FileChange,
    FsDiff,
    HttpExchange,
    OutputChunk,
    SessionEnded,
    SessionStarted,
    ToolCallFinished,
    ToolCallStarted,
)
from ise_es.store.base import EventStore, StoredEvent
from ise_es.store.resolve import resolve_session_stream as resolve_stream

__all__ = ["RecordedSession", "RecordedStep", "load_session", "parse_session", "resolve_stream"]


@dataclass
class RecordedStep:
    """One tool call of the recording."""

    started: ToolCallStarted
    chunks: list[OutputChunk] = field(default_factory=list)
    http: list[HttpExchange] = field(default_factory=list)
    finished: ToolCallFinished | None = None
    changes: list[FileChange] = field(default_factory=list)

    @property
    def index(self) -> int:
        return self.started.index

    @property
    def call_id(self) -> str:
        return self.started.call_id

    @property
    def tool(self) -> str:
        return self.started.tool

    def output(self, stream: str) -> bytes:
        """The recorded chunks of one stream, joined (the head of the output)."""
        return b"".join(c.data for c in self.chunks if c.stream == stream)


@dataclass
class RecordedSession:
    stream_id: str
    version: int
    """The stream's version when it was read: the version replayed."""
    head_hash: str
    started: SessionStarted
    steps: list[RecordedStep]
    """Tool calls that finished in the recording, in order."""
    unfinished: RecordedStep | None = None
    """A call the recording started but never finished (the recorder was killed)."""
    ended: SessionEnded | None = None

    @property
    def session_id(self) -> str:
        return self.stream_id.removeprefix("session-")


def parse_session(stream_id: str, events: list[StoredEvent]) -> RecordedSession:
    """Group a session stream's events by tool call.

    Raises:
        InvalidInput: the stream is empty or does not start with SessionStarted.
    """
    if not events or not isinstance(events[0].data, SessionStarted):
        raise InvalidInput(f"{stream_id} is not a session stream (no SessionStarted first)")
    started = events[0].data
    steps: list[RecordedStep] = []
    by_call: dict[str, RecordedStep] = {}
    ended: SessionEnded | None = None
    for stored in events[1:]:
        data = stored.data
        if isinstance(data, ToolCallStarted):
            step = RecordedStep(data)
            steps.append(step)
            by_call[data.call_id] = step
        elif isinstance(data, OutputChunk):
            if data.call_id in by_call:
                by_call[data.call_id].chunks.append(data)
        elif isinstance(data, HttpExchange):
            if data.call_id in by_call:
                by_call[data.call_id].http.append(data)
        elif isinstance(data, ToolCallFinished):
            if data.call_id in by_call:
                by_call[data.call_id].finished = data
        elif isinstance(data, FsDiff):
            if data.call_id in by_call:
                by_call[data.call_id].changes.extend(data.changes)
        elif isinstance(data, SessionEnded):
            ended = data
    unfinished = steps.pop() if steps and steps[-1].finished is None else None
    return RecordedSession(
        stream_id=stream_id,
        version=events[-1].version,
        head_hash=events[-1].hash,
        started=started,
        steps=steps,
        unfinished=unfinished,
        ended=ended,
    )


def load_session(store: EventStore, session_id: str) -> RecordedSession:
    """Raises InvalidInput (no such session, not a session stream)."""
    stream = resolve_stream(store, session_id)
    return parse_session(stream, store.read_stream(stream))
