"""Corpus statistics: the paper's Table 3 and the tool-use analyses beside it.

Two halves, so the read model can be incremental: `summarize_session` is a pure function of one
session (stored per session), and `corpus_stats` aggregates any number of those summaries (and
replay verdicts) into the report. Table 3 is computed over the trajectories kept by `status`
(completed ones by default: completion gating); completion rate is completed sessions over
ended sessions.

Failure -> recovery (`step_key`): a failed tool call (see `call_failed`) is recovered when a
later call in the same session, in any user turn, succeeds towards the same step:
- exec: the same command family (`command_family`): the program after any `VAR=value`
  assignments, `sudo`/`env`/`time`/`timeout N`, and `cd DIR &&` prefixes, by its base name;
  `python -m MODULE` counts as the module; for programs whose first word is a subcommand (git,
  pip, npm, cargo, docker, kubectl, systemctl, apt...) the subcommand too, and for
  interpreters (python, bash, node...) the script they run. So
  `python3 -m unittest discover -s tests -v` failing and `python3 -m unittest discover -s
  tests` passing after an edit, a turn later, is a recovery; `ls` passing is not.
- read, write, edit, memory_get: the same file path (normalised), whichever of them succeeds
  (a failed `read` of a missing file recovered by `write` of it); apply_patch: its first path.
- process: the same process session id; any other tool: the same tool.
One later success recovers every earlier failure waiting on that step. The paper's measure
counts recovery within the trajectory, and a user turn asking to fix a failure is part of it.

domains x tasks x tools: per trajectory, the intent's domains, tasks and tools; an intent
that lists no tools (scripted scenarios, imports) counts the distinct tools its trajectory
used instead, so the factor never reads 0 beside a non-zero tools-per-trajectory.
"""

from __future__ import annotations

import functools
import posixpath
import re
import shlex
import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

import msgspec

from ise_es.events import ToolCall, UserTurn
from ise_es.projections.session import AgentStep, SessionView, call_failed, parse_json

__all__ = [
    "CorpusStats",
    "ReplaySummary",
    "SessionSummary",
    "command_family",
    "corpus_stats",
    "step_key",
    "summarize_session",
]

TOP_TRIGRAMS = 10


class SessionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What statistics need from one session (the stats read model's row)."""

    session_id: str
    stream_id: str
    intent_id: str
    status: str | None
    user_turns: int
    dialogue_turns: int
    """User, assistant and tool messages (the system prompt and closing turn excluded)."""
    tool_calls: int
    tool_sequence: list[str]
    think_messages: int
    """Assistant messages carrying reasoning (think tags once rendered)."""
    domains: int = 0
    tasks: int = 0
    intent_tools: int = 0
    complexity: str | None = None
    exit_codes: dict[str, int] = {}
    failed_calls: int = 0
    recovered_calls: int = 0
    agent_prompt_tokens: int = 0
    agent_completion_tokens: int = 0
    agent_reasoning_tokens: int = 0
    user_prompt_tokens: int = 0
    user_completion_tokens: int = 0
    model_calls: int = 0
    intent_turns: dict[str, int] = {}
    """User turns per intent, in a session that works through several (intents per session,
    an appended query); empty for a session of one intent."""


class ReplaySummary(msgspec.Struct, frozen=True, kw_only=True):
    replay_id: str
    source_stream: str
    status: str
    determinism: float


SUBCOMMAND_PROGRAMS = frozenset(
    {
        "apt", "apt-get", "brew", "cargo", "conda", "docker", "git", "go", "kubectl", "npm",
        "pip", "pip3", "pnpm", "poetry", "service", "systemctl", "uv", "yarn",
    }
)  # fmt: skip
"""Programs whose first argument says what they do (`git commit` and `git push` differ)."""
INTERPRETERS = frozenset({"bash", "sh", "zsh", "node", "perl", "ruby", "php", "Rscript"})
"""Programs whose step is the script they run (`python3 a.py` and `python3 b.py` differ)."""
_PREFIX_WORDS = frozenset({"sudo", "env", "time", "nohup", "exec", "command"})
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_CD_PREFIX = re.compile(r"^\s*cd\s+[^;&|]+?\s*(?:&&|;)\s*")
FILE_TOOLS = frozenset({"read", "write", "edit", "memory_get"})


_NEEDS_SHLEX = re.compile(r"['\"\\\x0b\x0c\x1c-\x1f]|[^\x00-\x7f]")
"""Quotes, backslashes, or whitespace str.split() and shlex disagree on. Without any of them
shlex.split (a pure-Python character loop, most of the stats fold) equals str.split()."""


@functools.lru_cache(maxsize=8192)
def command_family(command: str) -> str:
    """The step a shell command works towards: its program (and module or subcommand)."""
    text = command.strip()
    while (m := _CD_PREFIX.match(text)) is not None:
        text = text[m.end() :]
    if _NEEDS_SHLEX.search(text) is None:
        words = text.split()
    else:
        try:
            words = shlex.split(text)
        except ValueError:
            words = text.split()
    i = 0
    while i < len(words):
        if _ASSIGNMENT.match(words[i]) or words[i] in _PREFIX_WORDS:
            i += 1
        elif words[i] == "timeout":  # `timeout 30 cmd`
            i += 2 if i + 1 < len(words) and words[i + 1][:1].isdigit() else 1
        else:
            break
    if i >= len(words):
        return ""
    program = posixpath.basename(words[i])
    rest = [w for w in words[i + 1 :] if w not in ("&&", "||", "|", ";")]
    if re.fullmatch(r"python[0-9.]*", program) and rest[:1] == ["-m"] and len(rest) > 1:
        return f"python -m {rest[1]}"
    if program in SUBCOMMAND_PROGRAMS or program in INTERPRETERS or program.startswith("python"):
        # the subcommand, or the script an interpreter runs (`python3 -c` stays itself)
        sub = next((w for w in rest if not w.startswith("-")), "")
        if program not in SUBCOMMAND_PROGRAMS and rest[:1] == ["-c"]:
            sub = "-c"
        return f"{program} {posixpath.basename(sub) if sub else ''}".strip()
    return program


def _arguments(call: ToolCall) -> dict[str, Any]:
    try:
        parsed = parse_json(call.arguments or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def step_key(call: ToolCall) -> tuple[str, str]:
    """What a call works towards, for failure -> recovery (see the module docstring)."""
    args = _arguments(call)
    if call.name == "exec" and isinstance(args.get("command"), str):
        return ("exec", command_family(args["command"]))
    if call.name in FILE_TOOLS and isinstance(args.get("path"), str):
        return ("file", posixpath.normpath(args["path"].removeprefix("./")))
    if call.name == "apply_patch" and isinstance(args.get("input"), str):
        m = re.search(r"^\*\*\* (?:Add|Update|Delete) File: (.+)$", args["input"], re.M)
        if m:
            return ("file", posixpath.normpath(m.group(1).strip().removeprefix("./")))
    if call.name == "process" and isinstance(args.get("sessionId"), str):
        return ("process", args["sessionId"])
    return ("tool", call.name)


def _count(value: Any) -> int:
    return len(value) if isinstance(value, list | tuple | dict) else 0


def _usage(view: SessionView) -> Counter[str]:
    """Tokens by role and kind over the session's model calls."""
    usage = Counter[str]()
    for call in view.model_calls:
        if call.role == "agent":
            usage["agent_prompt"] += call.usage.prompt_tokens
            usage["agent_completion"] += call.usage.completion_tokens
            usage["agent_reasoning"] += call.usage.reasoning_tokens or 0
        elif call.role == "user":
            usage["user_prompt"] += call.usage.prompt_tokens
            usage["user_completion"] += call.usage.completion_tokens
    return usage


def summarize_session(view: SessionView) -> SessionSummary:
    record = view.started.intent_record if view.started else {}
    sequence: list[str] = []
    exit_codes: Counter[str] = Counter()
    failed = recovered = think = dialogue = users = 0
    # step key -> number of failures still waiting for a success towards that step
    waiting: Counter[tuple[str, str]] = Counter()
    keys: dict[str, tuple[str, str]] = {}
    per_intent: Counter[str] = Counter()
    for entry in view.entries:
        dialogue += 1
        if isinstance(entry, UserTurn):
            users += 1
            per_intent[entry.intent_id] += 1
        elif isinstance(entry, AgentStep):
            if entry.message.reasoning:
                think += 1
            for tool_call in entry.message.tool_calls:
                sequence.append(tool_call.name)
                keys[tool_call.id] = step_key(tool_call)
        else:
            if entry.exit_code is not None:
                exit_codes[str(entry.exit_code)] += 1
            key = keys.get(entry.call_id, ("tool", entry.tool))
            if call_failed(entry):
                failed += 1
                waiting[key] += 1
            elif waiting[key]:
                recovered += waiting.pop(key)
    usage = _usage(view)
    tools = record.get("tools") or record.get("tools_used") or sorted(set(sequence))
    complexity = record.get("complexity")
    return SessionSummary(
        session_id=view.session_id,
        stream_id=view.stream_id,
        intent_id=view.intent_id,
        status=view.status,
        user_turns=users,
        dialogue_turns=dialogue,
        tool_calls=len(sequence),
        tool_sequence=sequence,
        think_messages=think,
        domains=_count(record.get("domains")),
        tasks=_count(record.get("tasks")),
        intent_tools=_count(tools),
        complexity=complexity if isinstance(complexity, str) else None,
        exit_codes=dict(exit_codes),
        failed_calls=failed,
        recovered_calls=recovered,
        agent_prompt_tokens=usage["agent_prompt"],
        agent_completion_tokens=usage["agent_completion"],
        agent_reasoning_tokens=usage["agent_reasoning"],
        user_prompt_tokens=usage["user_prompt"],
        user_completion_tokens=usage["user_completion"],
        model_calls=len(view.model_calls),
        intent_turns={
            str(i.get("intent_id", "")): per_intent.get(str(i.get("intent_id", "")), 0)
            for i in (view.started.intents if view.started else [])
        },
    )


class Distribution(msgspec.Struct, kw_only=True):
    avg: float
    median: float
    max: int
    min: int


def _dist(values: list[int]) -> Distribution:
    if not values:
        return Distribution(avg=0.0, median=0.0, max=0, min=0)
    return Distribution(
        avg=round(statistics.fmean(values), 2),
        median=float(statistics.median(values)),
        max=max(values),
        min=min(values),
    )


class CorpusStats(msgspec.Struct, kw_only=True):
    status_filter: str
    sessions: int
    sessions_by_status: dict[str, int]
    ended_sessions: int
    complete_trajectories: int
    completion_rate: float
    """Completed sessions / ended sessions."""
    trajectories: int
    """Sessions kept by `status_filter` (Table 3 is over these)."""
    unique_intents: int
    user_turns: Distribution
    share_6_to_10_user_turns: float
    dialogue_turns: Distribution
    tool_calls: Distribution
    unique_tools: Distribution
    think_tags: Distribution
    domains_avg: float
    tasks_avg: float
    tools_avg: float
    complexity_mix: dict[str, float]
    total_tool_calls: int
    tool_shares: dict[str, float]
    top_trigrams: list[tuple[list[str], int]]
    cooccurrence_tools: list[str]
    cooccurrence: list[list[int]]
    """[i][j]: trajectories using both tools i and j; the diagonal counts single tools."""
    exit_codes: dict[str, int]
    failed_calls: int
    recovered_calls: int
    recovery_rate: float
    tokens: dict[str, int]
    tokens_per_trajectory: dict[str, float]
    replays: int
    replay_statuses: dict[str, int]
    determinism_rate: float | None
    """Mean determinism over replays; None when nothing was replayed."""
    user_turn_values: list[int] = []
    dialogue_turn_values: list[int] = []
    tool_call_values: list[int] = []
    multi_intent_sessions: int = 0
    """Trajectories that worked through several intents (each counts in unique_intents)."""
    intents_per_session: dict[str, int] = {}
    """Number of intents -> trajectories, over the multi-intent ones."""
    user_turns_per_intent: float = 0.0
    """Mean user turns an intent took, over the multi-intent trajectories."""

    def lines(self) -> list[str]:
        """A human-readable report (Table 3 first)."""
        ut, dt = self.user_turns, self.dialogue_turns
        out = [
            f"Table 3 (status: {self.status_filter}; {self.trajectories} trajectories)",
            f"  unique intents                 {self.unique_intents}",
            f"  complete trajectories          {self.complete_trajectories}",
            f"  completion rate                {100 * self.completion_rate:.2f}% "
            f"of {self.ended_sessions} ended sessions",
            f"  user turns avg/median/max      {ut.avg:.2f} / {ut.median:g} / {ut.max}",
            f"  share with 6-10 user turns     {100 * self.share_6_to_10_user_turns:.2f}%",
            f"  dialogue turns avg/max         {dt.avg:.2f} / {dt.max}",
            f"  tool calls per trajectory      {self.tool_calls.avg:.2f}",
            f"  unique tools per trajectory    {self.unique_tools.avg:.2f}",
            f"  think tags per trajectory      {self.think_tags.avg:.2f}",
            f"  domains x tasks x tools        {self.domains_avg:.2f} x {self.tasks_avg:.2f} x "
            f"{self.tools_avg:.2f}",
            "  complexity mix                 "
            + (", ".join(f"{k} {100 * v:.1f}%" for k, v in self.complexity_mix.items()) or "n/a"),
        ]
        if self.multi_intent_sessions:
            counts = ", ".join(f"{k}: {v}" for k, v in self.intents_per_session.items())
            out.append(
                f"  several intents per session    {self.multi_intent_sessions} trajectories "
                f"(intents {counts}); {self.user_turns_per_intent:.2f} user turns per intent"
            )
        out += [
            "",
            f"Tool shares ({self.total_tool_calls} calls): "
            + ", ".join(f"{k} {100 * v:.1f}%" for k, v in self.tool_shares.items()),
            "Top tool-call trigrams:",
        ]
        out += [f"  {'-'.join(t)}  {n}" for t, n in self.top_trigrams] or ["  (none)"]
        out.append(
            "Exit codes: "
            + (", ".join(f"{k}: {v}" for k, v in self.exit_codes.items()) or "(none)")
        )
        out.append(
            f"Failure -> recovery: {self.failed_calls} failed calls, {self.recovered_calls} "
            f"recovered ({100 * self.recovery_rate:.1f}%)"
        )
        out.append(
            "Tokens: "
            + ", ".join(f"{k} {v}" for k, v in self.tokens.items())
            + " (per trajectory: "
            + ", ".join(f"{k} {v:.0f}" for k, v in self.tokens_per_trajectory.items())
            + ")"
        )
        if self.replays:
            out.append(
                f"Replays: {self.replays}, determinism rate "
                f"{100 * (self.determinism_rate or 0):.2f}% ("
                + ", ".join(f"{k} {v}" for k, v in self.replay_statuses.items())
                + ")"
            )
        else:
            out.append("Replays: none recorded, so no determinism rate (run `ise-es replay`)")
        return out


class _Tally:
    """Running sums over the summaries a report keeps (Table 3 and the tool analyses)."""

    def __init__(self) -> None:
        self.intents: set[str] = set()
        self.user_turns: list[int] = []
        self.dialogue: list[int] = []
        self.calls: list[int] = []
        self.unique: list[int] = []
        self.think: list[int] = []
        self.domains: list[int] = []
        self.tasks: list[int] = []
        self.tools: list[int] = []
        self.complexity: Counter[str] = Counter()
        self.shares: Counter[str] = Counter()
        self.trigrams: Counter[tuple[str, str, str]] = Counter()
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.exit_codes: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self.failed = self.recovered = 0
        self.multi: Counter[str] = Counter()
        self.per_intent_turns: list[int] = []

    def add(self, s: SessionSummary) -> None:
        if s.intent_turns:
            self.intents.update(s.intent_turns)
            self.multi[str(len(s.intent_turns))] += 1
            self.per_intent_turns.extend(s.intent_turns.values())
        else:
            self.intents.add(s.intent_id)
        self.user_turns.append(s.user_turns)
        self.dialogue.append(s.dialogue_turns)
        self.calls.append(s.tool_calls)
        used = sorted(set(s.tool_sequence))
        self.unique.append(len(used))
        self.think.append(s.think_messages)
        self.domains.append(s.domains)
        self.tasks.append(s.tasks)
        self.tools.append(s.intent_tools)
        if s.complexity:
            self.complexity[s.complexity] += 1
        self.shares.update(s.tool_sequence)
        seq = s.tool_sequence
        self.trigrams.update(zip(seq, seq[1:], seq[2:], strict=False))
        for i, a in enumerate(used):
            for b in used[i:]:
                self.pairs[(a, b)] += 1
        self.exit_codes.update(s.exit_codes)
        self.failed += s.failed_calls
        self.recovered += s.recovered_calls
        self.tokens["agent_prompt"] += s.agent_prompt_tokens
        self.tokens["agent_completion"] += s.agent_completion_tokens
        self.tokens["agent_reasoning"] += s.agent_reasoning_tokens
        self.tokens["user_prompt"] += s.user_prompt_tokens
        self.tokens["user_completion"] += s.user_completion_tokens

    def cooccurrence(self) -> tuple[list[str], list[list[int]]]:
        """Tools by share (most used first) and [i][j]: trajectories using both i and j."""
        shares = self.shares
        names = sorted(shares, key=lambda t: (-shares[t], t))
        index = {name: i for i, name in enumerate(names)}
        matrix = [[0] * len(names) for _ in names]
        for (a, b), count in self.pairs.items():
            matrix[index[a]][index[b]] = matrix[index[b]][index[a]] = count
        return names, matrix


def _avg(values: list[int]) -> float:
    return round(statistics.fmean(values), 2) if values else 0.0


def corpus_stats(
    summaries: Iterable[SessionSummary],
    replays: Iterable[ReplaySummary] = (),
    *,
    status: str = "completed",
) -> CorpusStats:
    """Aggregate per-session summaries (any order) into the corpus report."""
    by_status: Counter[str] = Counter()
    t = _Tally()
    for s in summaries:
        by_status[s.status or "open"] += 1
        if status == "any" or s.status == status:
            t.add(s)
    return _report(t, by_status, list(replays), status)


def _report(
    t: _Tally, by_status: Counter[str], replay_list: list[ReplaySummary], status: str
) -> CorpusStats:
    n = len(t.user_turns)
    total_calls = sum(t.shares.values())
    names, matrix = t.cooccurrence()
    ended = sum(v for k, v in by_status.items() if k != "open")
    replay_statuses = Counter(r.status for r in replay_list)
    complexity = t.complexity
    return CorpusStats(
        status_filter=status,
        sessions=sum(by_status.values()),
        sessions_by_status=dict(sorted(by_status.items())),
        ended_sessions=ended,
        complete_trajectories=by_status.get("completed", 0),
        completion_rate=by_status.get("completed", 0) / ended if ended else 0.0,
        trajectories=n,
        unique_intents=len(t.intents),
        user_turns=_dist(t.user_turns),
        share_6_to_10_user_turns=sum(1 for u in t.user_turns if 6 <= u <= 10) / n if n else 0.0,
        dialogue_turns=_dist(t.dialogue),
        tool_calls=_dist(t.calls),
        unique_tools=_dist(t.unique),
        think_tags=_dist(t.think),
        domains_avg=_avg(t.domains),
        tasks_avg=_avg(t.tasks),
        tools_avg=_avg(t.tools),
        complexity_mix={
            k: complexity[k] / n for k in sorted(complexity, key=lambda c: (-complexity[c], c))
        },
        total_tool_calls=total_calls,
        tool_shares={name: t.shares[name] / total_calls for name in names},
        top_trigrams=[
            (list(tri), c)
            for tri, c in sorted(t.trigrams.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TRIGRAMS]
        ],
        cooccurrence_tools=names,
        cooccurrence=matrix,
        exit_codes=dict(sorted(t.exit_codes.items(), key=lambda kv: (-kv[1], kv[0]))),
        failed_calls=t.failed,
        recovered_calls=t.recovered,
        recovery_rate=t.recovered / t.failed if t.failed else 0.0,
        tokens=dict(t.tokens),
        tokens_per_trajectory={k: v / n for k, v in t.tokens.items()} if n else {},
        replays=len(replay_list),
        replay_statuses=dict(sorted(replay_statuses.items())),
        determinism_rate=(
            statistics.fmean(r.determinism for r in replay_list) if replay_list else None
        ),
        user_turn_values=t.user_turns,
        dialogue_turn_values=t.dialogue,
        tool_call_values=t.calls,
        multi_intent_sessions=sum(t.multi.values()),
        intents_per_session=dict(sorted(t.multi.items(), key=lambda kv: int(kv[0]))),
        user_turns_per_intent=_avg(t.per_intent_turns),
    )
