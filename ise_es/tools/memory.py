"""The `memory_search` and `memory_get` tools over the agent's memory files in the workspace:
`MEMORY.md` and `memory/**/*.md`.

Search is a plain keyword search, not semantic: files are cut into passages (runs of lines
separated by blank lines or headings, at most 12 lines), and a passage's score is the share of
the query's distinct terms it contains, each term weighted by its inverse document frequency
over the passages (so rare words count more). Scores are in [0, 1]; ties go to the passage
with more matches, then to path and line order. Deterministic, and cheap enough to run on
every call.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ise_es.errors import ToolError
from ise_es.tools.base import Tool, ToolContext, ToolOutcome
from ise_es.tools.files import read_text, workspace_path
from ise_es.tools.schema import ArgumentError

__all__ = ["MEMORY_GET", "MEMORY_SEARCH", "Passage", "passages", "score_passages"]

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _words(text: str) -> list[str]:
    return text.split()


_STOPWORDS = frozenset(
    _words(
        "a an and are as at be by did do does for from had has have how i in is it its me my "
        "of on or our so that the their them then there these this to was we were what when "
        "where which who why will with you your"
    )
)


_MAX_PASSAGE_LINES = 12
_SNIPPET_CHARS = 700


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


class Passage:
    __slots__ = ("end", "path", "start", "terms", "text")

    def __init__(self, path: str, start: int, lines: list[str]) -> None:
        self.path = path
        self.start = start
        self.end = start + len(lines) - 1
        self.text = "\n".join(lines)
        self.terms = set(_terms(self.text))


def passages(path: str, text: str) -> list[Passage]:
    """Cut a file into passages at blank lines and headings (1-based line numbers)."""
    out: list[Passage] = []
    block: list[str] = []
    start = 1
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() == "" or line.startswith("#") or len(block) >= _MAX_PASSAGE_LINES:
            if block:
                out.append(Passage(path, start, block))
            block = []
            if line.strip() == "":
                continue
        if not block:
            start = number
        block.append(line)
    if block:
        out.append(Passage(path, start, block))
    return out


def score_passages(query: str, corpus: list[Passage]) -> list[tuple[float, int, Passage]]:
    """(score, matched terms, passage), best first."""
    terms = list(dict.fromkeys(_terms(query)))
    if not terms or not corpus:
        return []
    n = len(corpus)
    weights = {t: math.log(1 + n / (1 + sum(t in p.terms for p in corpus))) + 1e-9 for t in terms}
    total = sum(weights.values())
    scored = []
    for passage in corpus:
        matched = [t for t in terms if t in passage.terms]
        if matched:
            score = sum(weights[t] for t in matched) / total
            scored.append((score, len(matched), passage))
    scored.sort(key=lambda s: (-s[0], -s[1], s[2].path, s[2].start))
    return scored


def _memory_files(ctx: ToolContext) -> list[str]:
    # The Sandbox protocol cannot list directories, so `find` runs inside the sandbox. It skips
    # symlinks (-type f), so a link pointing out of the workspace is never read.
    result = ctx.sandbox.exec(
        ["find", "MEMORY.md", "memory", "-type", "f", "-name", "*.md"], timeout=30
    )
    found = result.stdout.decode("utf-8", errors="replace").splitlines()
    return sorted({line.removeprefix("./") for line in found if line.strip()})


def run_memory_search(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    query: str = args["query"]
    if not _terms(query):
        raise ArgumentError("argument 'query' has no searchable words")
    max_results: int = args.get("maxResults") or ctx.settings.memory_max_results
    min_score = float(args.get("minScore") or 0.0)
    corpus: list[Passage] = []
    files = _memory_files(ctx)
    for path in files:
        try:
            corpus.extend(passages(path, read_text(ctx.sandbox, path, path)))
        except ToolError:
            continue  # not UTF-8 or vanished: not a memory file we can search
    hits = [h for h in score_passages(query, corpus) if h[0] >= min_score][:max_results]
    results = [
        {
            "path": p.path,
            "startLine": p.start,
            "endLine": p.end,
            "score": round(score, 3),
            "snippet": p.text[:_SNIPPET_CHARS],
        }
        for score, _, p in hits
    ]
    if not files:
        text = "No memory files (MEMORY.md, memory/*.md) in the workspace."
    elif not results:
        text = f"No matches for {query!r} in {len(files)} memory file(s)."
    else:
        text = "\n\n".join(
            f"{r['path']}:{r['startLine']}-{r['endLine']} (score {r['score']})\n{r['snippet']}"
            for r in results
        )
    return ToolOutcome(text=text, details={"query": query, "files": len(files), "results": results})


def _is_memory_path(relative: str) -> bool:
    return relative == "MEMORY.md" or (relative.startswith("memory/") and relative.endswith(".md"))


def run_memory_get(ctx: ToolContext, args: dict[str, Any]) -> ToolOutcome:
    shown: str = args["path"]
    relative = workspace_path(ctx, shown)
    if not _is_memory_path(relative):
        raise ToolError(
            f"{shown} is not a memory file: memory_get reads MEMORY.md and memory/*.md only "
            "(use read for other files)"
        )
    lines = read_text(ctx.sandbox, relative, shown).splitlines()
    first: int = args.get("from") or 1
    count: int | None = args.get("lines")
    if lines and first > len(lines):
        raise ArgumentError(
            f"argument 'from' ({first}) is beyond the end of {shown} ({len(lines)} lines)"
        )
    chosen = lines[first - 1 : first - 1 + count if count is not None else None]
    return ToolOutcome(
        text="\n".join(chosen) if chosen else "(empty)",
        details={"path": shown, "from": first, "lines": len(chosen), "totalLines": len(lines)},
    )


MEMORY_SEARCH = Tool(
    name="memory_search",
    description=(
        "Search your memory files (MEMORY.md and memory/*.md) by keywords; returns matching "
        "passages with path, line range and a score between 0 and 1."
    ),
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "Words to look for."},
            "maxResults": {"type": "integer", "minimum": 1, "maximum": 50},
            "minScore": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
    execute=run_memory_search,
    changes_files=False,
)

MEMORY_GET = Tool(
    name="memory_get",
    description="Read lines from a memory file (MEMORY.md or memory/*.md).",
    parameters={
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "MEMORY.md or memory/NAME.md."},
            "from": {"type": "integer", "minimum": 1, "description": "First line (1-based)."},
            "lines": {"type": "integer", "minimum": 1, "description": "Number of lines."},
        },
        "required": ["path"],
        "additionalProperties": False,
    },
    execute=run_memory_get,
    changes_files=False,
)
