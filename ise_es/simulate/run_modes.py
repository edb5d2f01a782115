"""Who plays the user across a session: the reference pipeline's three run modes.

A session works through one or more *segments*, each an intent:
- simulated: the role-locked user simulator works towards the intent, turn by turn, until it
  says the intent is fulfilled (the default mode; several in a row with intents per session,
  all in the same workspace);
- query: the text goes straight to the agent as the user's message, no simulator; the segment
  is over when the agent answers without tool calls (query-only lines, and the query appended
  when a session completes).

`SessionUser` has the simulator's `next_turn(dialogue)` interface, so the recorder's loop is the
same for every mode. When a segment is fulfilled and another follows, the closing turn of the
finished one (a UserTurn with completed=True) is handed out by `take_closed()` and the next
segment's first request is the turn returned; every UserTurn carries its segment's intent id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from ise_es.events import UserTurn
from ise_es.llm.base import ChatResult
from ise_es.simulate.user_simulator import DialogueEntry, SimulatorTurn, UserSimulator

__all__ = ["Segment", "SessionUser"]

NO_REPLY = "(no reply)"
"""What the recorder puts in the dialogue when the agent's turn ended without a final text."""


@dataclass(frozen=True)
class Segment:
    intent_id: str
    text: str
    simulated: bool = True
    """False: the text goes to the agent as is (query-only)."""
    record: Mapping[str, Any] = field(default_factory=dict)
    """The intent as given (its `answer`, for a query, is the reference answer)."""

    def describe(self) -> dict[str, Any]:
        """The segment as SessionStarted.intents records it."""
        out: dict[str, Any] = {
            "intent_id": self.intent_id,
            "natural_language_intent": self.text,
            "simulated": self.simulated,
        }
        for key in ("answer", "task_type"):
            if key in self.record:
                out[key] = self.record[key]
        return out


class SessionUser:
    """Plays the user through `segments`, one after another (see the module docstring)."""

    def __init__(
        self,
        segments: Sequence[Segment],
        make_simulator: Callable[[Segment], UserSimulator],
    ) -> None:
        if not segments:
            raise ValueError("a session needs at least one segment")
        self.segments = list(segments)
        self._make_simulator = make_simulator
        self._index = 0
        self._start = 0
        """Where the current segment's dialogue begins."""
        self._asked = False
        """A query segment's text went to the agent."""
        self._simulator: UserSimulator | None = None
        self._turns = 0
        self._closed: list[UserTurn] = []

    @property
    def current(self) -> Segment:
        return self.segments[self._index]

    def take_closed(self) -> list[UserTurn]:
        """Closing turns of segments finished by the last `next_turn` (record them first)."""
        closed, self._closed = self._closed, []
        return closed

    def next_turn(self, dialogue: Sequence[DialogueEntry]) -> SimulatorTurn:
        calls: list[ChatResult] = []
        while True:
            turn = self._segment_turn(dialogue)
            calls += turn.calls
            if not turn.ok or not turn.completed or self._index + 1 == len(self.segments):
                return self._numbered(replace(turn, calls=calls))
            # This segment is fulfilled and another follows: close it, start the next one.
            self._closed.append(self._event(turn))
            self._index += 1
            self._start = len(dialogue)
            self._asked = False
            self._simulator = None

    def _segment_turn(self, dialogue: Sequence[DialogueEntry]) -> SimulatorTurn:
        segment = self.current
        if not segment.simulated:
            return self._query_turn(dialogue, segment)
        if self._simulator is None:
            self._simulator = self._make_simulator(segment)
        return self._simulator.next_turn(dialogue[self._start :])

    def _query_turn(self, dialogue: Sequence[DialogueEntry], segment: Segment) -> SimulatorTurn:
        if not self._asked:
            self._asked = True
            return SimulatorTurn(
                turn=0, completed=False, query=segment.text, reason="query", raw=""
            )
        answered = bool(dialogue) and dialogue[-1].text != NO_REPLY
        reason = "the agent answered the query" if answered else "the agent gave no answer"
        return SimulatorTurn(turn=0, completed=True, query="", reason=reason, raw="")

    def _numbered(self, turn: SimulatorTurn) -> SimulatorTurn:
        if turn.ok and not turn.completed:
            self._turns += 1
        return replace(turn, turn=self._turns + (1 if turn.completed else 0))

    def _event(self, turn: SimulatorTurn) -> UserTurn:
        return msgspec.structs.replace(
            self._numbered(turn).user_turn(), intent_id=self.current.intent_id
        )

    def user_turn(self, turn: SimulatorTurn) -> UserTurn:
        """The UserTurn of a usable turn `next_turn` returned, tagged with its segment."""
        event = turn.user_turn()
        if len(self.segments) == 1 and self.segments[0].simulated:
            return event  # the classic session: nothing to tell apart
        return msgspec.structs.replace(event, intent_id=self.current.intent_id)
