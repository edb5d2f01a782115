"""The import rules of docs/architecture.md ("Import rules"), kept by a test.

Every module of `ise_es`, `replay` and `cli.py` is parsed with `ast` (imports inside
functions and under `if TYPE_CHECKING:` count too: a deferred import is still a dependency)
and each import of another package is checked against the layers below. A failure names the
importing module, its line and the rule it breaks.

Rules:
1. A package may import packages of lower layers only. Packages of one layer are peers and do
   not import each other, except in the presentation layer (the commands call the viewer).
2. Nothing outside a package imports its private modules (`_name.py`), and only the
   presentation layer (the composition root) imports a store implementation
   (`ise_es.store.sql`, for `open_store`): everything else is typed on the `EventStore`
   protocol of `ise_es.store.base`.
3. The package graph has no cycle (a cycle between two packages is a bug even where each
   single edge looks allowed).

`EXCEPTIONS` lists the edges that are needed today and would take a larger move than their
worth right now; each says why. An exception that is no longer used fails the test, like a
strict xfail, so the list can only shrink.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, set[str]]] = [
    ("errors", {"ise_es.errors"}),
    ("foundation", {"ise_es", "ise_es.events", "ise_es.config", "ise_es.outputs"}),
    ("schemas", {"ise_es.schema_export"}),
    (
        "infrastructure",
        {
            "ise_es.store",
            "ise_es.sandbox",
            "ise_es.llm",
            "ise_es.schema_export",
            "ise_es.diversity",
        },
    ),
    ("tools", {"ise_es.tools"}),
    ("web", {"ise_es.web"}),
    ("stages", {"ise_es.intents", "ise_es.simulate", "replay", "ise_es.projections"}),
    ("fleet", {"ise_es.fleet"}),
    ("presentation", {"ise_es.commands", "ise_es.viewer", "cli"}),
]
PEERS_MAY_IMPORT = {"presentation"}
IMPLEMENTATIONS = {"ise_es.store.sql"}
"""Modules only the presentation layer may import (above their own package)."""

EXCEPTIONS: dict[tuple[str, str], str] = {
    # (importing package, imported module) -> why it is allowed for now
}

RANK = {pkg: i for i, (_, pkgs) in enumerate(LAYERS) for pkg in pkgs}
LAYER_OF = {pkg: name for name, pkgs in LAYERS for pkg in pkgs}


def package_of(module: str) -> str:
    """`ise_es.store.sql` -> `ise_es.store`; `replay.runner` -> `replay`; `cli` -> `cli`."""
    parts = module.split(".")
    if parts[0] == "ise_es":
        return ".".join(parts[:2])
    return parts[0]


def module_files() -> dict[str, Path]:
    files = [*ROOT.glob("ise_es/**/*.py"), *ROOT.glob("replay/**/*.py"), ROOT / "cli.py"]
    out = {}
    for path in files:
        if path.is_relative_to(ROOT / "ise_es" / "data"):
            continue  # shipped workspace templates and fixtures: the sandbox's code, not ours
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from ise_es.store import sql` names a module too
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names)
    return found


def project_edges() -> list[tuple[str, int, str]]:
    """(importing module, line, imported module) for every import between our packages."""
    files = module_files()
    edges = []
    for module, path in sorted(files.items()):
        for line, target in imports_of(module, path):
            if target.split(".")[0] not in ("ise_es", "replay", "cli"):
                continue
            if target not in files:
                continue  # `from pkg.mod import name`: a name, the module is listed already
            if package_of(target) != package_of(module):
                edges.append((module, line, target))
    return edges


def check_edge(module: str, target: str) -> str | None:
    """Why `module` may not import `target`, or None when it may."""
    src, dst = package_of(module), package_of(target)
    if src not in RANK or dst not in RANK:
        return f"{src if src not in RANK else dst} is in no layer: add it to LAYERS"
    private = [p for p in target.split(".")[len(dst.split(".")) :] if p.startswith("_")]
    if private:
        return f"{target} is private to {dst}"
    if target in IMPLEMENTATIONS and src != dst and LAYER_OF[src] != "presentation":
        return f"{target} is an implementation: type on ise_es.store.base.EventStore"
    if RANK[dst] < RANK[src]:
        return None
    if RANK[dst] == RANK[src] and LAYER_OF[src] in PEERS_MAY_IMPORT:
        return None
    if RANK[dst] == RANK[src]:
        return f"{src} and {dst} are peers in layer {LAYER_OF[src]!r}"
    return f"{src} (layer {LAYER_OF[src]!r}) imports upwards into {LAYER_OF[dst]!r}"


def test_every_package_is_in_a_layer() -> None:
    packages = {package_of(m) for m in module_files()}
    assert packages - RANK.keys() == set(), "packages missing from LAYERS"
    assert RANK.keys() - packages == set(), "LAYERS names packages that do not exist"


def test_imports_follow_the_layers() -> None:
    broken = []
    used = set()
    for module, line, target in project_edges():
        why = check_edge(module, target)
        if why is None:
            continue
        key = (package_of(module), target)
        if key in EXCEPTIONS:
            used.add(key)
            continue
        broken.append(f"{module}:{line} imports {target}: {why}")
    assert broken == []
    assert set(EXCEPTIONS) - used == set(), "exceptions no longer needed: remove them"


PRESENTATION_ONLY = {"click", "rich"}
"""Libraries of the presentation layer: stage packages return data and progress callbacks."""


def test_only_the_presentation_layer_imports_click_or_rich() -> None:
    found = [
        f"{module}:{line} imports {target}"
        for module, path in sorted(module_files().items())
        if LAYER_OF.get(package_of(module)) != "presentation"
        for line, target in imports_of(module, path)
        if target.split(".")[0] in PRESENTATION_ONLY
    ]
    assert found == []


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for module, line, target in project_edges():
        a, b = package_of(module), package_of(target)
        graph[a].add(b)
        where.setdefault((a, b), f"{module}:{line}")
    cycle = _cycle(graph)
    assert cycle is None, (
        "cycle: "
        + " -> ".join(cycle or [])
        + " ("
        + ", ".join(where[(a, b)] for a, b in zip(cycle or [], (cycle or [])[1:], strict=False))
        + ")"
    )


def test_the_checker_sees_what_it_must_refuse() -> None:
    """The rules themselves: an upward edge, a peer edge and a private module are refused,
    imports inside functions are found."""
    assert check_edge("ise_es.store.sql", "ise_es.projections.tables") is not None
    assert check_edge("ise_es.projections.run", "ise_es.intents.records") is not None
    assert check_edge("replay.runner", "ise_es.store._sql") is not None
    assert check_edge("ise_es.fleet.worker", "ise_es.store.sql") is not None
    assert check_edge("ise_es.commands.record", "ise_es.store.sql") is None
    assert check_edge("ise_es.commands.serve", "ise_es.viewer.app") is None
    assert check_edge("ise_es.tools.base", "ise_es.sandbox.base") is None
    sessions = imports_of("ise_es.commands.sessions", ROOT / "ise_es/commands/sessions.py")
    assert "rich.console" in [t for _, t in sessions]  # what the click/rich test looks for
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    lines = [t for _, t in imports_of("cli", ROOT / "cli.py")]
    assert "ise_es.commands.diversity" in lines  # imported inside project_diversity()
