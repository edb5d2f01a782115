"""What every importer (`import openclaw`, `import middle`, `import atif`) shares: the files it
reads, the result of parsing one session, the walk that numbers turns, steps and calls while
events are made, and the append that makes importing a file again a no-op.

A file becomes one or more `ParsedSession`s (every event built, nothing written); each is then
appended in ONE call under its stream id, so a session is imported whole or not at all. The
event ids derive from the source's digest, so appending the same source again changes nothing,
and a different source claiming an imported session id is refused: the log is append-only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from ise_es.errors import InvalidInput
from ise_es.events import AgentMessage, SessionStarted, ToolCall, ToolCallStarted, UserTurn
from ise_es.store.base import EventStore, NewEvent

__all__ = [
    "ENDED_STATUSES",
    "FileResult",
    "ParsedSession",
    "StreamWalk",
    "append_session",
    "derived_id",
    "import_files",
    "input_files",
    "read_source",
]

ENDED_STATUSES = ("completed", "turn_cap", "stalled", "error", "interrupted")
"""The statuses of SessionEnded: an imported status outside them becomes `completed`."""


class ParsedSession(msgspec.Struct, kw_only=True):
    session_id: str
    stream_id: str
    source: str
    digest: str
    events: list[NewEvent]
    user_turns: int
    tool_calls: int
    skipped: list[str] = []
    """`FILE:LINE: problem` of each line left out under `skip_invalid`."""
    intent_attached: bool = False

    @classmethod
    def of(
        cls,
        session_id: str,
        source: str,
        digest: str,
        events: list[NewEvent],
        *,
        user_turns: int,
        tool_calls: int,
        skipped: list[str] | None = None,
        intent_attached: bool = False,
    ) -> ParsedSession:
        """A session bound for the stream `session-<session_id>`, as every importer writes."""
        return cls(
            session_id=session_id,
            stream_id=f"session-{session_id}",
            source=source,
            digest=digest,
            events=events,
            user_turns=user_turns,
            tool_calls=tool_calls,
            skipped=skipped or [],
            intent_attached=intent_attached,
        )

    @classmethod
    def left_out(cls, source: str, problem: str) -> ParsedSession:
        """A source left out under `skip_invalid`: no events, the problem in `skipped`."""
        return cls(
            session_id="",
            stream_id="",
            source=source,
            digest="",
            events=[],
            user_turns=0,
            tool_calls=0,
            skipped=[problem],
        )


def derived_id(*parts: object) -> str:
    """An event id derived from where the event came from (importer, source digest,
    position in the source), so importing the same source again appends nothing."""
    return hashlib.sha256(":".join(str(p) for p in parts).encode()).hexdigest()[:32]


class FileResult(msgspec.Struct, kw_only=True):
    path: str
    stream_id: str = ""
    status: str
    """imported | already imported | failed | skipped"""
    events: int = 0
    error: str = ""
    skipped: list[str] = []
    intent_attached: bool = False


class StreamWalk:
    """The numbering an importer keeps while it turns a source into events: the user turn,
    the agent step within it, and every call made so far (with the turn, step and index it
    was made at), so that a result can be preceded by the ToolCallStarted of its call."""

    def __init__(self) -> None:
        self.turn = 0
        self.step = 0
        self.calls: dict[str, tuple[ToolCall, int, int, int]] = {}
        """call id -> (call, turn, step, session-wide index)"""

    def user_turn(self, text: str) -> UserTurn:
        self.turn += 1
        self.step = 0
        return UserTurn(turn=self.turn, text=text)

    def remember(self, call: ToolCall, index: int) -> None:
        self.calls[call.id] = (call, self.turn, self.step, index)

    def agent_message(
        self, text: str, reasoning: str | None, calls: list[ToolCall]
    ) -> AgentMessage:
        message = AgentMessage(
            turn=self.turn, step=self.step, text=text, reasoning=reasoning, tool_calls=calls
        )
        self.step += 1
        return message

    def call_name(self, call_id: str) -> str:
        known = self.calls.get(call_id)
        return known[0].name if known else ""

    def started(self, call_id: str) -> ToolCallStarted | None:
        """The start of a known call (None: no message made it)."""
        known = self.calls.get(call_id)
        if known is None:
            return None
        call, turn, step, index = known
        return ToolCallStarted(
            call_id=call_id,
            tool=call.name,
            arguments=call.arguments,
            turn=turn,
            step=step,
            index=index,
        )


def input_files(
    paths: Iterable[str | Path], suffixes: tuple[str, ...], *, exclude: tuple[str, ...] = ()
) -> list[Path]:
    """Files named, and every file with one of `suffixes` under directories named (but the
    names in `exclude`), in a stable order: what every importer reads.

    Raises:
        InvalidInput: a path that does not exist.
    """
    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and f.suffix in suffixes and f.name not in exclude
                )
            )
        elif p.is_file():
            out.append(p)
        else:
            raise InvalidInput(f"{p}: no such file or directory")
    return out


def read_source(p: Path) -> bytes:
    """The bytes of an importer's source file.

    Raises:
        InvalidInput: unreadable.
    """
    try:
        return p.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{p}: cannot read: {e.strerror or e}") from e


def append_session(store: EventStore, path: str | Path, parsed: ParsedSession) -> FileResult:
    """Append one parsed session unless the store holds it already (same source digest: a
    no-op) or holds another source's session under that id (refused: append-only)."""
    head = store.read_stream(parsed.stream_id, 1, to_version=1)
    if head:
        first = head[0].data
        source = (
            first.provenance.get("source_digest") if isinstance(first, SessionStarted) else None
        )
        if source == parsed.digest:
            return FileResult(path=str(path), stream_id=parsed.stream_id, status="already imported")
        return FileResult(
            path=str(path),
            stream_id=parsed.stream_id,
            status="failed",
            error=(
                f"{path}: session {parsed.stream_id} is already in the store from another "
                f"file (digest {str(source)[:12]}, this file {parsed.digest[:12]}); the log "
                "is append-only"
            ),
        )
    result = store.append(parsed.stream_id, parsed.events, 0)
    return FileResult(
        path=str(path),
        stream_id=parsed.stream_id,
        status="imported" if result.appended else "already imported",
        events=result.appended,
        skipped=parsed.skipped,
        intent_attached=parsed.intent_attached,
    )


def import_files(
    store: EventStore, files: Iterable[Path], parse: Callable[[Path], list[ParsedSession]]
) -> list[FileResult]:
    """Parse and append every session of every file; a bad file is reported and the others
    go on. A parsed entry without events (a line left out under `skip_invalid`) is reported
    as skipped."""
    results: list[FileResult] = []
    for path in files:
        try:
            sessions = parse(path)
        except InvalidInput as e:
            results.append(FileResult(path=str(path), status="failed", error=str(e)))
            continue
        for parsed in sessions:
            if not parsed.events:
                results.append(
                    FileResult(path=parsed.source, status="skipped", skipped=parsed.skipped)
                )
                continue
            results.append(append_session(store, parsed.source, parsed))
    return results
