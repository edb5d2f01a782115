"""The domain and task library: the D and T axes of the 4D intent space.

The library is data we wrote (``data/library.yaml``), shipped in the package and validated on
load: unique ids, every tool one the agent has, every domain with tasks, every placeholder
well-formed. A broken library fails loudly naming the domain/task and field, never half-loads.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import msgspec
import yaml

from ise_es.errors import InvalidInput
from ise_es.tools.catalog import TOOL_NAMES

__all__ = [
    "AGENT_TOOLS",
    "PLACEHOLDER_KINDS",
    "Domain",
    "Library",
    "Task",
    "load_library",
    "parse_placeholders",
]

# The tools an intent can need are exactly the agent's tools: one list, owned by the registry.
AGENT_TOOLS: tuple[str, ...] = TOOL_NAMES
"""The agent's tool names (FORMATS.md section 1); a task may only need these."""

PLACEHOLDER_KINDS: frozenset[str] = frozenset(
    {"n", "pct", "file", "dir", "url", "name", "time", "topic", "person"}
)
_PLACEHOLDER = re.compile(r"\{([a-z]+)(?::([^{}]*))?\}")
_RANGE = re.compile(r"^(\d+)-(\d+)$")
_EXT = re.compile(r"^[a-z0-9]{1,5}$")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class Task(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    name: str
    description: str
    """Imperative phrase; may hold placeholders such as ``{n:3-12}`` or ``{file:csv}``."""
    tools: tuple[str, ...]
    keywords: tuple[str, ...]
    """Lower-case stems; a rendered request mentions the task when it contains one of them."""
    domain: str = ""
    """Filled on load from the enclosing domain."""


class Domain(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: str
    """kebab-case, as in the reference schema (``web-extraction``)."""
    name: str
    """The paper's spelling (``Web-Extraction``)."""
    description: str
    tasks: tuple[Task, ...]


class _LibraryFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: int
    domains: tuple[Domain, ...]


class Library(msgspec.Struct, frozen=True, kw_only=True):
    """Domains in file order; tasks indexed by id."""

    version: int
    domains: tuple[Domain, ...]

    @property
    def domain_ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.domains)

    def domain(self, domain_id: str) -> Domain:
        for d in self.domains:
            if d.id == domain_id:
                return d
        raise KeyError(domain_id)

    def task(self, task_id: str) -> Task:
        return self.tasks_by_id()[task_id]

    def tasks_by_id(self) -> dict[str, Task]:
        return {t.id: t for d in self.domains for t in d.tasks}

    @property
    def task_count(self) -> int:
        return sum(len(d.tasks) for d in self.domains)

    def tools_for(self, task_ids: list[str] | tuple[str, ...]) -> list[str]:
        """The tools a set of tasks needs, in the registry's order."""
        by_id = self.tasks_by_id()
        needed = {tool for tid in task_ids for tool in by_id[tid].tools}
        return [tool for tool in AGENT_TOOLS if tool in needed]


def parse_placeholders(text: str) -> list[tuple[str, str | None]]:
    """The (kind, argument) placeholders in a task description, in order.

    Raises:
        ValueError: an unknown kind, or an argument that does not fit its kind.
    """
    found: list[tuple[str, str | None]] = []
    for m in _PLACEHOLDER.finditer(text):
        kind, arg = m.group(1), m.group(2)
        if kind not in PLACEHOLDER_KINDS:
            raise ValueError(f"unknown placeholder {{{kind}}}")
        if kind in ("n", "pct"):
            rm = _RANGE.match(arg or "")
            if rm is None or int(rm.group(1)) > int(rm.group(2)):
                raise ValueError(f"{{{kind}}} needs a range A-B with A <= B, got {arg!r}")
        elif kind == "file":
            if arg is None or not _EXT.match(arg):
                raise ValueError(f"{{file}} needs an extension, got {arg!r}")
        elif arg is not None:
            raise ValueError(f"{{{kind}}} takes no argument, got {arg!r}")
        found.append((kind, arg))
    leftover = _PLACEHOLDER.sub("", text)
    if "{" in leftover or "}" in leftover:
        raise ValueError("unbalanced or malformed placeholder braces")
    return found


def _validate(lib: _LibraryFile, origin: str) -> None:
    if not lib.domains:
        raise InvalidInput(f"{origin}: the library has no domains")
    seen_domains: set[str] = set()
    seen_tasks: dict[str, str] = {}
    for d in lib.domains:
        where = f"{origin}: domain {d.id!r}"
        if not _ID.match(d.id):
            raise InvalidInput(f"{where}: id must be kebab-case")
        if d.id in seen_domains:
            raise InvalidInput(f"{where}: duplicate domain id")
        seen_domains.add(d.id)
        if not d.description.strip():
            raise InvalidInput(f"{where}: empty description")
        if not d.tasks:
            raise InvalidInput(f"{where}: has no tasks")
        for t in d.tasks:
            twhere = f"{where}, task {t.id!r}"
            if not _ID.match(t.id):
                raise InvalidInput(f"{twhere}: id must be kebab-case")
            if t.id in seen_tasks:
                raise InvalidInput(f"{twhere}: duplicate task id (also in {seen_tasks[t.id]!r})")
            seen_tasks[t.id] = d.id
            if not t.tools:
                raise InvalidInput(f"{twhere}: names no tools")
            unknown = [tool for tool in t.tools if tool not in AGENT_TOOLS]
            if unknown:
                raise InvalidInput(
                    f"{twhere}: unknown tool(s) {', '.join(unknown)} "
                    f"(known: {', '.join(AGENT_TOOLS)})"
                )
            if len(set(t.tools)) != len(t.tools):
                raise InvalidInput(f"{twhere}: a tool is listed twice")
            if not t.keywords or any(k != k.lower() or not k.strip() for k in t.keywords):
                raise InvalidInput(f"{twhere}: keywords must be non-empty lower-case strings")
            try:
                parse_placeholders(t.description)
            except ValueError as e:
                raise InvalidInput(f"{twhere}: description: {e}") from e


def _from_bytes(raw: bytes, origin: str) -> Library:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise InvalidInput(f"{origin}: not valid YAML: {e}") from e
    try:
        parsed = msgspec.convert(data, _LibraryFile)
    except msgspec.ValidationError as e:
        raise InvalidInput(f"{origin}: {e}") from e
    _validate(parsed, origin)
    domains = tuple(
        msgspec.structs.replace(
            d, tasks=tuple(msgspec.structs.replace(t, domain=d.id) for t in d.tasks)
        )
        for d in parsed.domains
    )
    return Library(version=parsed.version, domains=domains)


@cache
def _builtin() -> Library:
    raw = resources.files("ise_es.intents").joinpath("data/library.yaml").read_bytes()
    return _from_bytes(raw, "ise_es/intents/data/library.yaml")


def load_library(path: Path | None = None) -> Library:
    """The shipped library, or one read from `path` (same schema).

    Raises:
        InvalidInput: the file does not parse or does not validate (names domain/task/field).
    """
    if path is None:
        return _builtin()
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read: {e.strerror}") from e
    return _from_bytes(raw, str(path))
