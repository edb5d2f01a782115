"""Rule-based quality audits of sessions (no LLM), and their summary in the paper's terms.

Rules (one `Finding` each time a rule fires):
  role_drift          a user turn contains an assistant-pattern phrase from the lexicon
  stagnation          the same tool with byte-identical arguments >= 3 calls in a row
  malformed_tool_call arguments not a non-empty JSON object, unknown tool, or a required
                      parameter missing (checked against the session's own tool schemas)
  orphan_tool_call    a tool call that never got a result (in an ended session)
  orphan_tool_result  a result for a call id no assistant message made
  empty_user_turn     a user message with no text
  reasoning_leak      a user turn carrying reasoning markup, or a sentence of the agent's
                      hidden reasoning verbatim (the simulator saw what it must not see)
  secret_leak         a token, key or URL password anywhere in the trajectory
The user-turn rules read the turns that become user messages (not the simulator's closing turn).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec

from ise_es.errors import InvalidInput
from ise_es.events import ToolCall, UserTurn
from ise_es.projections.secrets import find_secrets
from ise_es.projections.session import AgentStep, SessionView, parse_json

__all__ = [
    "DEFAULT_LEXICON",
    "RULES",
    "AuditSummary",
    "Finding",
    "SessionAudit",
    "audit_session",
    "load_lexicon",
    "summarize",
]

RULES = (
    "role_drift",
    "stagnation",
    "malformed_tool_call",
    "orphan_tool_call",
    "orphan_tool_result",
    "empty_user_turn",
    "reasoning_leak",
    "secret_leak",
)
STAGNATION_RUN = 3
LEAK_MIN_SENTENCE = 40
"""Shorter reasoning sentences ("Let me check.") occur in user turns by coincidence."""
_LEAK_MARKERS = re.compile(r"</?think(?:ing)?>|</?reasoning>|reasoning_content", re.IGNORECASE)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")

DEFAULT_LEXICON = "role_drift.txt"


class Finding(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    rule: str
    turn: int | None = None
    call_id: str | None = None
    detail: str = ""


class SessionAudit(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    stream_id: str
    status: str | None
    user_turns: int
    tool_calls: int
    well_formed_calls: int
    findings: list[Finding] = []

    @property
    def flagged(self) -> bool:
        return bool(self.findings)


def load_lexicon(path: str | Path | None = None) -> list[str]:
    """The role-drift phrases: the shipped file, or `path`.

    Raises:
        InvalidInput: the file cannot be read or holds no phrase.
    """
    try:
        if path is None:
            text = resources.files("ise_es.projections").joinpath(DEFAULT_LEXICON).read_text()
            where = DEFAULT_LEXICON
        else:
            text = Path(path).read_text(encoding="utf-8")
            where = str(path)
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read role-drift lexicon {path}: {e}") from e
    phrases = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    if not phrases:
        raise InvalidInput(f"role-drift lexicon {where} holds no phrase (one phrase per line)")
    return phrases


def _call_problems(call: ToolCall, schemas: dict[str, dict[str, Any]] | None) -> list[str]:
    try:
        args = parse_json(call.arguments)
    except ValueError:
        return ["arguments are not valid JSON"]
    if not isinstance(args, dict):
        return [f"arguments are a JSON {type(args).__name__}, not an object"]
    problems = [] if args else ["arguments are an empty object"]
    if schemas is None:  # the session recorded no schemas: existence cannot be judged
        return problems
    schema = schemas.get(call.name)
    if schema is None:
        return [*problems, f"unknown tool {call.name!r}"]
    required = schema.get("parameters", {}).get("required", [])
    missing = [name for name in required if name not in args]
    if missing:
        problems.append("missing required parameter(s) " + ", ".join(missing))
    return problems


def _schemas(view: SessionView) -> dict[str, dict[str, Any]] | None:
    if view.started is None or not view.started.tool_schemas:
        return None
    out: dict[str, dict[str, Any]] = {}
    for schema in view.started.tool_schemas:
        fn = schema.get("function") if isinstance(schema.get("function"), dict) else schema
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = fn
    return out


def _texts(view: SessionView) -> Iterator[tuple[str, str, int | None, str | None]]:
    """Every string of a trajectory with where it is: (text, where, turn, call id)."""
    if view.started is not None:
        yield view.started.system_prompt, "system prompt", None, None
        yield view.started.intent, "intent", None, None
    turn = 0
    for entry in view.entries:
        if isinstance(entry, UserTurn):
            turn = entry.turn
            yield entry.text, "user turn", turn, None
        elif isinstance(entry, AgentStep):
            m = entry.message
            yield m.text, "assistant text", m.turn, None
            yield m.reasoning or "", "assistant reasoning", m.turn, None
            for call in m.tool_calls:
                yield call.arguments, "tool-call arguments", m.turn, call.id
        else:
            yield entry.result_text, "tool result", turn, entry.call_id
    if view.closing is not None:
        yield view.closing.text, "closing user turn", view.closing.turn, None


def _strings(view: SessionView) -> list[str]:
    """The strings of `_texts`, in its order, without saying where each is (the fast path)."""
    out: list[str] = []
    add = out.append
    if view.started is not None:
        add(view.started.system_prompt)
        add(view.started.intent)
    for entry in view.entries:
        if isinstance(entry, UserTurn):
            add(entry.text)
        elif isinstance(entry, AgentStep):
            m = entry.message
            add(m.text)
            add(m.reasoning or "")
            out.extend(call.arguments for call in m.tool_calls)
        else:
            add(entry.result_text)
    if view.closing is not None:
        add(view.closing.text)
    return out


def _secret_findings(view: SessionView) -> Iterator[Finding]:
    # One scan of the whole trajectory first: almost every session has no secret, and one
    # search over the joined text costs far less than one per string. The separator holds
    # whitespace, which no token pattern crosses; a hit sends us through the strings one by one.
    if not any(True for _ in find_secrets("\n\x00\n".join(_strings(view)))):
        return
    for text, where, turn, call_id in _texts(view):
        for kind in sorted({hit.kind for hit in find_secrets(text)}):
            yield Finding(
                rule="secret_leak", turn=turn, call_id=call_id, detail=f"{kind} in {where}"
            )


_SPLIT_AT = re.compile(r"[.!?\n]")


def sentences(block: str) -> list[str]:
    """`_SENTENCE_SPLIT.split(block)`, found from the punctuation and newlines alone: the
    pattern's look-behind made the regex engine try every character (75 ns each), the most of
    an audit after secrets. A run of whitespace after . ! or ? ends a sentence (the mark stays
    with it), so does a run of newlines; tests/projections/test_audit.py checks the two agree."""
    out: list[str] = []
    start = 0
    n = len(block)
    search = _SPLIT_AT.search
    m = search(block)
    while m is not None:
        at = m.start()
        end = at + 1
        if block[at] == "\n":
            while end < n and block[end] == "\n":
                end += 1
            out.append(block[start:at])
            start = end
        elif end < n and block[end].isspace():
            while end < n and block[end].isspace():
                end += 1
            out.append(block[start : at + 1])
            start = end
        m = search(block, end)
    out.append(block[start:])
    return out


def _leaked_sentence(text: str, reasoning: list[str]) -> str | None:
    if len(text) < LEAK_MIN_SENTENCE:  # no sentence long enough fits in it
        return None
    for block in reasoning:
        for sentence in sentences(block):
            sentence = sentence.strip()
            if len(sentence) >= LEAK_MIN_SENTENCE and sentence in text:
                return sentence
    return None


@functools.lru_cache(maxsize=8)
def _lowered(lexicon: tuple[str, ...]) -> list[tuple[str, str]]:
    """Each phrase with its lower-case form, once per lexicon rather than once per session."""
    return [(p, p.lower()) for p in lexicon]


def audit_session(view: SessionView, lexicon: list[str]) -> SessionAudit:
    """Every finding of every rule for one session."""
    findings: list[Finding] = []
    phrases = _lowered(tuple(lexicon))
    schemas = _schemas(view)
    calls: list[tuple[int, ToolCall]] = []
    recent_reasoning: list[str] = []
    well_formed = 0
    user_turns = 0
    steps = [e for e in view.entries if isinstance(e, AgentStep)]
    for entry in view.entries:
        if isinstance(entry, UserTurn):
            user_turns += 1
            lowered = entry.text.lower()
            for phrase, low in phrases:
                if low in lowered:
                    findings.append(
                        Finding(rule="role_drift", turn=entry.turn, detail=f"{phrase!r}")
                    )
                    break
            if not entry.text.strip():
                findings.append(Finding(rule="empty_user_turn", turn=entry.turn))
            marker = _LEAK_MARKERS.search(entry.text)
            leaked = None if marker else _leaked_sentence(entry.text, recent_reasoning)
            if marker is not None:
                detail = f"markup {marker.group(0)!r}"
            elif leaked is not None:
                detail = f"verbatim: {leaked[:80]!r}"
            if marker is not None or leaked is not None:
                findings.append(Finding(rule="reasoning_leak", turn=entry.turn, detail=detail))
            recent_reasoning = []
        elif isinstance(entry, AgentStep):
            if entry.message.reasoning:
                recent_reasoning.append(entry.message.reasoning)
            for call in entry.message.tool_calls:
                calls.append((entry.message.turn, call))
                problems = _call_problems(call, schemas)
                if problems:
                    findings.append(
                        Finding(
                            rule="malformed_tool_call",
                            turn=entry.message.turn,
                            call_id=call.id,
                            detail=f"{call.name}: " + "; ".join(problems),
                        )
                    )
                else:
                    well_formed += 1
    findings.extend(_stagnation(calls))
    findings.extend(_orphans(view, steps))
    findings.extend(_secret_findings(view))
    return SessionAudit(
        session_id=view.session_id,
        stream_id=view.stream_id,
        status=view.status,
        user_turns=user_turns,
        tool_calls=len(calls),
        well_formed_calls=well_formed,
        findings=findings,
    )


def _stagnation(calls: list[tuple[int, ToolCall]]) -> Iterator[Finding]:
    i = 0
    while i < len(calls):
        turn, first = calls[i]
        j = i + 1
        while (
            j < len(calls)
            and calls[j][1].name == first.name
            and calls[j][1].arguments == first.arguments
        ):
            j += 1
        if j - i >= STAGNATION_RUN:
            yield Finding(
                rule="stagnation",
                turn=turn,
                call_id=first.id,
                detail=f"{first.name} called {j - i} times in a row with identical arguments",
            )
        i = j


def _orphans(view: SessionView, steps: list[AgentStep]) -> Iterator[Finding]:
    results = {e.call_id for e in view.entries if not isinstance(e, UserTurn | AgentStep)}
    made: set[str] = set()
    # In an open session the last step's calls may still be running: not orphans yet.
    judged = steps if view.ended is not None else steps[:-1]
    for step in steps:
        made.update(c.id for c in step.message.tool_calls)
    for step in judged:
        for call in step.message.tool_calls:
            if call.id not in results:
                yield Finding(
                    rule="orphan_tool_call",
                    turn=step.message.turn,
                    call_id=call.id,
                    detail=f"{call.name} call never got a result",
                )
    for entry in view.entries:
        if not isinstance(entry, UserTurn | AgentStep) and entry.call_id not in made:
            yield Finding(
                rule="orphan_tool_result",
                call_id=entry.call_id,
                detail=f"result of {entry.tool} for a call no assistant message made",
            )


# -------------------------------------------------------------------------------- summary


class AuditSummary(msgspec.Struct, kw_only=True):
    sessions: int = 0
    user_turns: int = 0
    tool_calls: int = 0
    well_formed_calls: int = 0
    flagged_sessions: int = 0
    free_of_drift_and_stagnation: int = 0
    findings: dict[str, int] = {}
    """Rule -> number of findings."""
    sessions_by_rule: dict[str, int] = {}
    """Rule -> number of sessions with at least one finding of it."""
    flagged_turns: dict[str, int] = {}
    """Rule -> number of distinct user turns it flagged (user-turn rules)."""

    def pct(self, part: int, whole: int) -> str:
        return f"{100.0 * part / whole:.2f}%" if whole else "n/a"

    def lines(self) -> list[str]:
        """The summary in the paper's phrasing."""
        if not self.sessions:
            return ["no sessions to audit"]
        out = [f"{self.sessions} sessions audited, {self.flagged_sessions} with findings"]
        for rule in ("role_drift", "empty_user_turn", "reasoning_leak"):
            turns = self.flagged_turns.get(rule, 0)
            out.append(
                f"{rule.replace('_', ' ')}: {self.pct(turns, self.user_turns)} of user turns "
                f"flagged ({turns} turns in {self.sessions_by_rule.get(rule, 0)} trajectories)"
            )
        out.append(
            f"{self.pct(self.free_of_drift_and_stagnation, self.sessions)} free of role drift "
            "and stagnation"
        )
        out.append(
            f"{self.pct(self.well_formed_calls, self.tool_calls)} of {self.tool_calls} tool "
            "calls well-formed"
        )
        for rule in ("stagnation", "orphan_tool_call", "orphan_tool_result", "secret_leak"):
            out.append(
                f"{rule.replace('_', ' ')}: {self.findings.get(rule, 0)} findings in "
                f"{self.sessions_by_rule.get(rule, 0)} trajectories "
                f"({self.pct(self.sessions_by_rule.get(rule, 0), self.sessions)})"
            )
        return out


def summarize(audits: Iterable[SessionAudit]) -> AuditSummary:
    s = AuditSummary(
        findings=dict.fromkeys(RULES, 0),
        sessions_by_rule=dict.fromkeys(RULES, 0),
        flagged_turns=dict.fromkeys(RULES, 0),
    )
    for audit in audits:
        s.sessions += 1
        s.user_turns += audit.user_turns
        s.tool_calls += audit.tool_calls
        s.well_formed_calls += audit.well_formed_calls
        if audit.findings:
            s.flagged_sessions += 1
        rules = {f.rule for f in audit.findings}
        if not rules & {"role_drift", "stagnation"}:
            s.free_of_drift_and_stagnation += 1
        for rule in rules:
            s.sessions_by_rule[rule] = s.sessions_by_rule.get(rule, 0) + 1
        turns: dict[str, set[int]] = {}
        for f in audit.findings:
            s.findings[f.rule] = s.findings.get(f.rule, 0) + 1
            if f.turn is not None:
                turns.setdefault(f.rule, set()).add(f.turn)
        for rule, ts in turns.items():
            s.flagged_turns[rule] = s.flagged_turns.get(rule, 0) + len(ts)
    return s
