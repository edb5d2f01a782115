"""Build a synthetic corpus with the paper's Table 3 shape, through the store API.

Per trajectory on average: 8.12 user turns, ~68 dialogue turns (user + assistant + tool
messages), 29.26 tool calls, ~4.7 unique tools; exec is ~46% of calls and exec-exec-exec the top
trigram. Outputs follow a log-normal size distribution (median ~300 B, capped at 32 KiB) and
arrive as OutputChunk events as the recorder writes them. A few sessions carry audit findings
(role drift, stagnation, malformed arguments, a leaked token) at rates like the paper's, and
~3% more sessions end without completing.

One append (one transaction) per session stream. Deterministic for a given --seed.

    python benchmarks/make_corpus.py --db sqlite:///corpus.db --trajectories 23132
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ise_es.events import (
    AgentMessage,
    Event,
    FileChange,
    FsDiff,
    ModelCall,
    ModelSpec,
    OutputChunk,
    SessionEnded,
    SessionStarted,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    Usage,
    UserTurn,
)
from ise_es.projections.openclaw import reference_tool_schemas
from ise_es.store import migrate
from ise_es.store.sql import open_store

TOOLS = [
    "exec",
    "write",
    "read",
    "edit",
    "process",
    "web_fetch",
    "web_search",
    "memory_search",
    "memory_get",
    "apply_patch",
    "cron",
]
OTHER_WEIGHTS = [0.0, 0.22, 0.16, 0.12, 0.06, 0.12, 0.1, 0.06, 0.05, 0.08, 0.03]
USER_TURN_CHOICES = list(range(2, 16))
# mean 8.12 with most sessions at 6-10 user turns
USER_TURN_WEIGHTS = [3, 4, 6, 8, 11, 13, 13, 11, 9, 7, 5, 4, 3, 3]
_VOCABULARY = (
    "logs report config deploy backup metrics cache index build test schema user data archive "
    "invoice backlog cron nginx service queue export csv json yaml"
)
WORDS = _VOCABULARY.split()
DRIFT = "I'd be happy to help you with the next step."
LEAK = "ghp_" + "Zx9" * 12


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


@dataclass
class _Draft:
    """One session being generated: its events so far and what shapes the rest."""

    sid: str
    used: list[str]
    events: list[Event]
    n: int = 0
    """Tool calls so far."""
    last_tool: str = "exec"
    drift: bool = False
    stagnate: bool = False
    malformed: bool = False
    leak: bool = False


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        # Pools of outputs so generation stays cheap; sizes are log-normal.
        self.outputs: list[str] = []
        for _ in range(2000):
            size = min(32768, max(8, int(rng.lognormvariate(5.7, 1.25))))
            lines = []
            total = 0
            while total < size:
                line = f"{rng.choice(WORDS)}/{rng.choice(WORDS)}.{rng.choice(['log', 'txt', 'py'])}"
                line += f" {rng.randint(1, 99999)} {_text(rng, rng.randint(1, 8))}"
                lines.append(line)
                total += len(line) + 1
            self.outputs.append("\n".join(lines)[:size])
        self.schemas = reference_tool_schemas()

    def arguments(self, tool: str) -> dict[str, Any]:
        rng = self.rng
        name = f"{rng.choice(WORDS)}/{rng.choice(WORDS)}.txt"
        return {
            "exec": {
                "command": f"grep -rn {rng.choice(WORDS)} {rng.choice(WORDS)}/"
                f" | head -{rng.randint(5, 50)}"
            },
            "write": {"path": name, "content": _text(rng, rng.randint(5, 60))},
            "read": {"path": name},
            "edit": {"path": name, "oldText": rng.choice(WORDS), "newText": rng.choice(WORDS)},
            "process": {"action": rng.choice(["poll", "log", "list"]), "sessionId": "nova-forest"},
            "web_fetch": {"url": f"http://127.0.0.1:8000/{rng.choice(WORDS)}"},
            "web_search": {"query": _text(rng, 4)},
            "memory_search": {"query": _text(rng, 3)},
            "memory_get": {"path": f"memory/{rng.choice(WORDS)}.md"},
            "apply_patch": {
                "input": f"*** Begin Patch\n*** Update File: {name}\n@@\n-a\n+b\n*** End Patch"
            },
            "cron": {"action": "add", "schedule": "0 3 * * *", "tz": "UTC", "command": "backup"},
        }[tool]

    def session(self, index: int, status: str) -> tuple[str, list[Event]]:
        rng = self.rng
        sid = hashlib.sha256(f"corpus:{index}".encode()).hexdigest()[:16]
        turns = rng.choices(USER_TURN_CHOICES, USER_TURN_WEIGHTS)[0]
        total_calls = max(1, round(rng.gammavariate(4.0, 29.4 / 4.0)))
        used = ["exec", *self._other_tools()]
        draft = _Draft(sid, used, [self._started(sid, used)])
        per_turn = [0] * turns
        for _ in range(total_calls):
            per_turn[rng.randrange(turns)] += 1
        draft.drift = rng.random() < 0.0002 * turns
        draft.stagnate = rng.random() < 0.01
        draft.malformed = rng.random() < 0.01
        draft.leak = rng.random() < 0.002
        for turn in range(1, turns + 1):
            self._user_turn(draft, turn, last=turn == turns)
            self._agent_turn(draft, turn, per_turn[turn - 1])
        if status == "completed":
            draft.events.append(
                UserTurn(turn=turns + 1, text="Thanks, that is everything.", completed=True)
            )
        draft.events.append(SessionEnded(status=status, user_turns=turns, tool_calls=draft.n))  # type: ignore[arg-type]
        return f"session-{sid}", draft.events

    def _other_tools(self) -> list[str]:
        """The tools a session uses besides exec (4.8 on average)."""
        rng = self.rng
        k = min(len(TOOLS) - 1, max(1, round(rng.gauss(4.8, 1.3))))
        others: list[str] = []
        while len(others) < k:
            t = rng.choices(TOOLS, OTHER_WEIGHTS)[0]
            if t not in others:
                others.append(t)
        return others

    def _started(self, sid: str, used: list[str]) -> SessionStarted:
        rng = self.rng
        domains = rng.randint(1, 3)
        return SessionStarted(
            session_id=sid,
            intent_id=f"intent_{sid[:8]}",
            intent=f"As a {rng.choice(WORDS)} engineer I need the {_text(rng, 30)}",
            intent_record={
                "domains": [rng.choice(WORDS) for _ in range(domains)],
                "tasks": [rng.choice(WORDS) for _ in range(rng.randint(domains, 5))],
                "tools": used,
                "complexity": rng.choices(["simple", "medium", "complex"], [2, 5, 3])[0],
            },
            persona={"name": "Synthetic", "role": rng.choice(WORDS)},
            models=[ModelSpec(role="agent", backend="openai", model="bench-agent")],
            system_prompt="You are an agent with a shell. " + _text(rng, 40),
            tool_schemas=self.schemas,
            sandbox_backend="local",
            template="bench",
        )

    def _user_turn(self, draft: _Draft, turn: int, *, last: bool) -> None:
        draft.events.append(
            ModelCall(
                role="user",
                model="bench-sim",
                usage=Usage(prompt_tokens=1500, completion_tokens=90, total_tokens=1590),
            )
        )
        text = f"Now please handle the {_text(self.rng, self.rng.randint(8, 40))}."
        if draft.drift and last:
            text = DRIFT
        draft.events.append(UserTurn(turn=turn, text=text))

    def _agent_turn(self, draft: _Draft, turn: int, remaining: int) -> None:
        """The agent's steps of one turn: `remaining` tool calls, 1-3 a step, then its reply
        (a stagnating session repeats its first call three times)."""
        rng = self.rng
        events = draft.events
        step = 0
        while remaining > 0:
            width = min(remaining, rng.choices([1, 2, 3], [0.76, 0.19, 0.05])[0])
            calls = [self._call(draft) for _ in range(width)]
            if draft.stagnate and turn == 1 and step == 0:
                calls = [calls[0]]
            self._agent(events, turn, step, calls)
            n = draft.n
            for i, call in enumerate(calls):
                self._result(events, call, turn, step, n - len(calls) + i, draft.leak and n == 3)
            step += 1
            remaining -= len(calls)
            if draft.stagnate and turn == 1 and step == 1:
                for _ in range(3):
                    draft.n += 1
                    again = ToolCall(
                        id=f"call_{draft.sid}_{draft.n}",
                        name=calls[0].name,
                        arguments=calls[0].arguments,
                    )
                    self._agent(events, turn, step, [again])
                    self._result(events, again, turn, step, draft.n - 1, False)
                    step += 1
        self._agent(events, turn, step, [], final=f"Done: {_text(rng, rng.randint(10, 60))}.")

    def _call(self, draft: _Draft) -> ToolCall:
        rng = self.rng
        # Runs of one tool (exec-exec-exec tops the trigrams), else a fresh pick.
        if rng.random() < 0.5:
            tool = draft.last_tool if draft.last_tool in draft.used else "exec"
        else:
            tool = "exec" if rng.random() < 0.32 else rng.choice(draft.used)
        draft.last_tool = tool
        draft.n += 1
        args = json.dumps(self.arguments(tool))
        if draft.malformed and draft.n == 2:
            args = args[:-1]
        return ToolCall(id=f"call_{draft.sid}_{draft.n}", name=tool, arguments=args)

    def _agent(
        self, events: list[Event], turn: int, step: int, calls: list[ToolCall], final: str = ""
    ) -> None:
        rng = self.rng
        events.append(
            ModelCall(
                role="agent",
                model="bench-agent",
                usage=Usage(
                    prompt_tokens=rng.randint(3000, 30000),
                    completion_tokens=rng.randint(40, 600),
                    total_tokens=0,
                ),
                latency_ms=rng.uniform(300, 4000),
            )
        )
        reasoning = f"I should {_text(rng, rng.randint(10, 50))}." if rng.random() < 0.6 else None
        text = final or (f"Let me {_text(rng, 6)}." if rng.random() < 0.3 else "")
        events.append(
            AgentMessage(turn=turn, step=step, text=text, reasoning=reasoning, tool_calls=calls)
        )

    def _result(
        self, events: list[Event], call: ToolCall, turn: int, step: int, index: int, leak: bool
    ) -> None:
        rng = self.rng
        out = rng.choice(self.outputs)
        if leak:
            out += f"\nGITHUB_TOKEN={LEAK}"
        code = None
        if call.name == "exec":
            code = rng.choices([0, 1, 2, 127], [0.86, 0.09, 0.03, 0.02])[0]
        events.append(
            ToolCallStarted(
                call_id=call.id,
                tool=call.name,
                arguments=call.arguments,
                turn=turn,
                step=step,
                index=index,
            )
        )
        data = out.encode()
        for seq, start in enumerate(range(0, len(data), 65536)):
            events.append(
                OutputChunk(
                    call_id=call.id, stream="stdout", seq=seq, data=data[start : start + 65536]
                )
            )
        events.append(
            ToolCallFinished(
                call_id=call.id,
                tool=call.name,
                result_text=out,
                exit_code=code,
                is_error=rng.random() < 0.01,
                duration_ms=rng.uniform(5, 900),
                stdout_size=len(data),
            )
        )
        if call.name in ("write", "edit", "apply_patch"):
            events.append(
                FsDiff(
                    call_id=call.id,
                    changes=[
                        FileChange(path=f"{rng.choice(WORDS)}.txt", kind="modified", size=len(data))
                    ],
                )
            )


def build(
    url: str, trajectories: int, *, seed: int = 1, incomplete: float = 0.03, quiet: bool = False
) -> dict[str, float]:
    """Append the corpus; returns counts and timing."""
    migrate.upgrade(url)
    gen = Generator(seed)
    extra = round(trajectories * incomplete)
    statuses = ["completed"] * trajectories + [
        gen.rng.choice(["turn_cap", "stalled", "error"]) for _ in range(extra)
    ]
    gen.rng.shuffle(statuses)
    started = time.perf_counter()
    n_events = 0
    with open_store(url) as store:
        for i, status in enumerate(statuses):
            stream_id, events = gen.session(i, status)
            store.append(stream_id, events, 0)
            n_events += len(events)
            if not quiet and (i + 1) % 1000 == 0:
                rate = n_events / (time.perf_counter() - started)
                print(
                    f"  {i + 1}/{len(statuses)} sessions, {n_events} events ({rate:.0f} ev/s)",
                    file=sys.stderr,
                )
    seconds = time.perf_counter() - started
    return {
        "sessions": len(statuses),
        "trajectories": trajectories,
        "events": n_events,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, help="store URL (migrated here if needed)")
    parser.add_argument("--trajectories", type=int, default=23132, help="completed trajectories")
    parser.add_argument(
        "--incomplete",
        type=float,
        default=0.03,
        help="extra share of sessions that do not complete",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = build(args.db, args.trajectories, seed=args.seed, incomplete=args.incomplete)
    print(
        f"{result['sessions']} sessions ({result['trajectories']} completed), "
        f"{result['events']} events in {result['seconds']:.1f} s "
        f"({result['events'] / result['seconds']:.0f} events/s, "
        "one transaction per session)"
    )


if __name__ == "__main__":
    main()
