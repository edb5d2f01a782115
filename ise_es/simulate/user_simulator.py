"""The role-locked user simulator: an LLM that plays the user who delegates the work.

It follows the ISE paper's four principles:

- perspective lock: the system prompt casts it as the user (an information provider who
  delegates), and a reply that reads as the assistant speaking is rejected and repaired;
- register matching: the prompt's "how you write" part follows the persona's experience level
  (brief and technical for Senior/Expert/Executive, full context for Junior, in between for
  Mid-level);
- incremental advancement: an overview and first step on turn 1, then one confirmed step and
  the single most useful next request per turn;
- responsive conditioning: every turn it reads the whole visible dialogue (the user's messages
  and the agent's replies after execution), never the agent's hidden reasoning or raw tool
  output, which `visible_dialogue` leaves out by construction.

Each turn the model must answer ``{"completed": bool, "query": str, "reason": str}``. The answer
is parsed (a fenced ```json block or prose around one object is tolerated) and validated; one
repair round sends the problem back; after that the turn fails with the raw text kept, and the
recorder ends the session with status ``error``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from ise_es.errors import LLMError
from ise_es.events import AgentMessage, Event, UserTurn
from ise_es.llm.base import ChatClient, ChatResult, Message, split_inline_reasoning
from ise_es.simulate.prompting import render_prompt

__all__ = [
    "OUTPUT_SCHEMA",
    "DialogueEntry",
    "Register",
    "SimulatorOutput",
    "SimulatorOutputError",
    "SimulatorTurn",
    "UserSimulator",
    "parse_simulator_output",
    "register_for",
    "visible_dialogue",
]

Register = Literal["brief", "balanced", "full"]

_REGISTERS: dict[str, Register] = {
    "junior": "full",
    "entry-level": "full",
    "beginner": "full",
    "mid-level": "balanced",
    "mid": "balanced",
    "intermediate": "balanced",
    "senior": "brief",
    "expert": "brief",
    "executive": "brief",
    "lead": "brief",
    "principal": "brief",
}


def register_for(experience_level: str | None) -> Register:
    """The writing register for a persona's experience level (FORMATS.md: Junior, Mid-level,
    Senior, Expert, Executive). Unknown or missing levels get the middle register."""
    if not experience_level:
        return "balanced"
    key = re.sub(r"[\s_]+", "-", experience_level.strip().lower())
    return _REGISTERS.get(key, "balanced")


class SimulatorOutput(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the simulator must answer each turn."""

    completed: bool
    query: str
    reason: str


OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "completed": {"type": "boolean"},
        "query": {"type": "string"},
        "reason": {"type": "string"},
    },
    "required": ["completed", "query", "reason"],
    "additionalProperties": False,
}
"""The JSON schema sent as structured output; `SimulatorOutput` enforces the same shape."""


class DialogueEntry(msgspec.Struct, frozen=True):
    """One message of the conversation as the user saw it."""

    speaker: Literal["user", "assistant"]
    text: str


class SimulatorOutputError(ValueError):
    """The simulator's reply does not satisfy the output contract; the message says why."""


_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
# Phrases only an assistant says: a query containing one has flipped roles.
_ASSISTANT_VOICE = re.compile(
    r"\bhow (?:can|may) i (?:help|assist)\b|\bas an ai\b|\bi am an ai\b|\bi'm an ai\b",
    re.IGNORECASE,
)
_decoder = msgspec.json.Decoder(SimulatorOutput)


def _candidates(text: str) -> list[str]:
    found = [text]
    found += [m.group(1).strip() for m in _FENCE.finditer(text)]
    start = text.find("{")
    if start != -1:
        try:
            _, end = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            pass
        else:
            found.append(text[start:end])
    return found


def parse_simulator_output(text: str) -> SimulatorOutput:
    """Parse and validate one simulator reply.

    Accepts the bare JSON object, a ```json fenced block, or one object with prose around it.

    Raises:
        SimulatorOutputError: no candidate parses into the contract; the message is the most
            specific problem found, phrased to be sent back to the model.
    """
    text = split_inline_reasoning(text)[0].strip()
    if not text:
        raise SimulatorOutputError("the reply is empty")
    problem = "the reply is not a JSON object"
    for candidate in _candidates(text):
        try:
            output = _decoder.decode(candidate)
        except msgspec.ValidationError as e:
            problem = f"the JSON object does not match the schema: {e}"
            continue
        except msgspec.DecodeError:
            continue
        if not output.completed and not output.query.strip():
            raise SimulatorOutputError("`query` is empty while `completed` is false")
        if _ASSISTANT_VOICE.search(output.query):
            raise SimulatorOutputError(
                "`query` reads as the assistant speaking; you are the user who asks for the work"
            )
        return output
    raise SimulatorOutputError(problem)


@dataclass(frozen=True)
class SimulatorTurn:
    """One simulator turn: the parsed answer, or why there is none, plus every model call."""

    turn: int
    completed: bool
    query: str
    reason: str
    raw: str
    """The last reply's text as the model produced it (reasoning removed)."""
    raw_attempts: list[str] = field(default_factory=list)
    """Every reply's text, first attempt first (two when a repair was asked for)."""
    calls: list[ChatResult] = field(default_factory=list)
    """Successful model calls of this turn: record each as a ModelCall (+ request blob)."""
    error: str | None = None
    """Set when the reply could not be used even after the repair round."""
    llm_error: LLMError | None = None
    """Set when the endpoint failed (record `failed_model_call(llm_error)`)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.llm_error is None

    def user_turn(self) -> UserTurn:
        """The UserTurn event for a usable turn.

        Raises:
            ValueError: the turn failed (`ok` is false): end the session with status error.
        """
        if not self.ok:
            raise ValueError(f"simulator turn {self.turn} failed: {self.error or self.llm_error}")
        return UserTurn(
            turn=self.turn,
            text=self.query,
            completed=self.completed,
            reason=self.reason,
            raw=self.raw,
        )


def visible_dialogue(events: Iterable[Event]) -> list[DialogueEntry]:
    """The conversation as the user saw it, from a session's events.

    User messages come from UserTurn; for each turn the agent's visible reply is the text of its
    last AgentMessage that has text (after execution, so the final answer). Reasoning, tool
    calls and tool output are not part of what a user sees and are left out.
    """
    entries: list[DialogueEntry] = []
    pending: str | None = None
    waiting_for_reply = False
    for event in events:
        if isinstance(event, UserTurn):
            if waiting_for_reply:
                entries.append(DialogueEntry("assistant", pending or "(no reply)"))
            if event.text:
                entries.append(DialogueEntry("user", event.text))
            pending, waiting_for_reply = None, bool(event.text)
        elif isinstance(event, AgentMessage):
            text = split_inline_reasoning(event.text)[0].strip()
            if text:
                pending = text
    if waiting_for_reply and pending is not None:
        entries.append(DialogueEntry("assistant", pending))
    return entries


def _persona_block(persona: Mapping[str, Any] | None) -> str:
    if not persona:
        return "An ordinary user of the assistant; no further details are known."
    labels = [
        ("name", "Name"),
        ("role", "Role"),
        ("industry", "Industry"),
        ("expertise", "Expertise"),
        ("experience_level", "Experience level"),
        ("communication_style", "Communication style"),
        ("work_context", "Work context"),
    ]
    lines = []
    for key, label in labels:
        value = persona.get(key)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if value:
            lines.append(f"- {label}: {value}")
    return "\n".join(lines) or "An ordinary user of the assistant; no further details are known."


def _render_conversation(dialogue: Sequence[DialogueEntry]) -> str:
    if not dialogue:
        return "(nothing yet)"
    blocks = []
    for entry in dialogue:
        text = entry.text
        if entry.speaker == "assistant":
            # Belt and braces: a reply text that still carries inline reasoning must not leak it.
            text = split_inline_reasoning(text)[0]
        label = "You (user)" if entry.speaker == "user" else "Assistant"
        blocks.append(f"[{label}]\n{text.strip()}")
    return "\n\n".join(blocks)


def _instruction(turn: int, max_turns: int) -> str:
    if turn == 1:
        return (
            "Write your opening message: a short overview of what you want overall, and the "
            "first concrete step you want done now."
        )
    text = (
        "Write your next message. First judge the assistant's last reply: did the step "
        "evidently work? If not, ask for a fix or a retry and say precisely what is wrong. If "
        "it did, confirm briefly and ask for the single most useful next step. If everything "
        "you wanted is done, set completed to true."
    )
    if turn >= max_turns:
        text += " This is your last message: wrap up."
    return text


class UserSimulator:
    """Plays the user for one session.

    Args:
        client: the `user` role's model endpoint. Its `json_mode` decides whether the schema is
            sent as structured output (`json_schema`), JSON mode is asked for (`json_object`),
            or free text is parsed (`none`).
        persona: the persona record (name, role, experience_level, communication_style...).
        intent: the natural-language intent the user wants fulfilled.
        max_turns: the session's turn cap, told to the model so it can plan.
    """

    def __init__(
        self,
        client: ChatClient,
        *,
        persona: Mapping[str, Any] | None,
        intent: str,
        max_turns: int = 12,
    ) -> None:
        self._client = client
        self.persona = dict(persona or {})
        self.intent = intent
        self.max_turns = max_turns
        level = self.persona.get("experience_level")
        self.register: Register = register_for(level if isinstance(level, str) else None)
        self.system_prompt = render_prompt(
            "user_simulator.md",
            persona=_persona_block(self.persona),
            intent=intent.strip(),
            register=render_prompt(f"register_{self.register}.md"),
            max_turns=max_turns,
        )

    def response_format(self) -> dict[str, Any] | None:
        mode = self._client.config.json_mode
        if mode == "json_schema":
            return {
                "type": "json_schema",
                "json_schema": {"name": "user_turn", "schema": OUTPUT_SCHEMA, "strict": True},
            }
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    def messages(self, dialogue: Sequence[DialogueEntry]) -> list[dict[str, Any]]:
        """The request for the next turn: system prompt plus the rendered conversation."""
        turn = 1 + sum(1 for e in dialogue if e.speaker == "user")
        return [
            {"role": "system", "content": self.system_prompt},
            {
                "role": "user",
                "content": render_prompt(
                    "user_simulator_turn.md",
                    turn=turn,
                    max_turns=self.max_turns,
                    conversation=_render_conversation(dialogue),
                    instruction=_instruction(turn, self.max_turns),
                ),
            },
        ]

    def next_turn(self, dialogue: Sequence[DialogueEntry]) -> SimulatorTurn:
        """Ask for the user's next message given the visible dialogue so far.

        Never raises for a bad reply or a failed endpoint: the returned turn says what went
        wrong (`error`, `llm_error`) and keeps the raw text and the calls made.
        """
        turn = 1 + sum(1 for e in dialogue if e.speaker == "user")
        messages: list[Message] = list(self.messages(dialogue))
        response_format = self.response_format()
        calls: list[ChatResult] = []
        raws: list[str] = []
        problem = ""
        for attempt in range(2):
            try:
                result = self._client.complete(messages, response_format=response_format)
            except LLMError as e:
                return SimulatorTurn(
                    turn=turn,
                    completed=False,
                    query="",
                    reason="",
                    raw=raws[-1] if raws else "",
                    raw_attempts=raws,
                    calls=calls,
                    error=f"user simulator endpoint failed: {e}",
                    llm_error=e,
                )
            calls.append(result)
            raws.append(result.content)
            try:
                output = parse_simulator_output(result.content)
            except SimulatorOutputError as e:
                problem = str(e)
                if attempt == 0:
                    messages = [*messages, *self._repair_messages(result.content, problem)]
                continue
            return SimulatorTurn(
                turn=turn,
                completed=output.completed,
                query=output.query.strip(),
                reason=output.reason.strip(),
                raw=result.content,
                raw_attempts=raws,
                calls=calls,
            )
        return SimulatorTurn(
            turn=turn,
            completed=False,
            query="",
            reason="",
            raw=raws[-1],
            raw_attempts=raws,
            calls=calls,
            error=f"user simulator reply unusable after one repair: {problem}",
        )

    @staticmethod
    def _repair_messages(raw: str, problem: str) -> list[dict[str, Any]]:
        return [
            {"role": "assistant", "content": raw},
            {
                "role": "user",
                "content": (
                    f"Your reply could not be used: {problem}. Reply again with exactly one "
                    'JSON object {"completed": <true|false>, "query": "<your message to the '
                    'assistant>", "reason": "<one sentence>"} and nothing else.'
                ),
            },
        ]
