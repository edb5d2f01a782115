"""Import discipline: the CLI starts without loading the heavy libraries of other commands.

A timing test would be flaky on a shared machine; this one is not: it runs commands in a fresh
interpreter and fails when a heavy module is in sys.modules afterwards, naming the chain of
modules that imported it (the fix is to move that import into the function that needs it).
The start-up figures themselves come from benchmarks/startup_bench.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest

from cli import main
from ise_es.store.sql import open_store
from tests.projections.builders import simple_session

ROOT = Path(__file__).resolve().parents[1]

HEAVY = (
    "matplotlib",
    "openai",
    "httpx",
    "docker",
    "numpy",
    "torch",
    "pyarrow",
    "starlette",
    "uvicorn",
    "jsonschema",
    "sentence_transformers",
    "transformers",
    "datasets",
    "pexpect",
    "selenium",
)
"""Never imported by `--help`, `sessions list|show` or `intents space`."""

HELP_ALSO_WITHOUT = (
    "msgspec",
    "ise_es.events",
    "rich",
    "sqlalchemy",
    "alembic",
    "psycopg",
    "yaml",
    "ise_es.store",
    "ise_es.projections",
    "ise_es.intents",
    "ise_es.simulate",
    "ise_es.sandbox",
    "ise_es.tools",
    "replay",
)
"""`--help` of any command prints with click alone: no event types, no store, no stage
package (what a command module needs from a stage it imports inside the command's function)."""

SQLITE_ALSO_WITHOUT = ("alembic", "psycopg", "sqlalchemy")
"""Opening a SQLite store checks its revision without Alembic and loads nothing of PostgreSQL,
and reading it (`sessions list|show`) runs on raw sqlite3 connections: SQLAlchemy, about 0.3 s
of start-up, is imported only by what uses it (the queue, read models, verify, migrations)."""

# Runs in a fresh interpreter: records, for every watched package (and its submodules), the
# modules that were executing when it was first imported (outermost first), then runs the CLI
# in-process.
CHILD = textwrap.dedent(
    """
    import json, sys

    watched, out_path, runs = set(json.loads(sys.argv[1])), sys.argv[2], json.loads(sys.argv[3])
    chains = {}

    class Witness:
        def find_spec(self, name, path=None, target=None):
            top = next((w for w in watched if name == w or name.startswith(w + ".")), None)
            if top is not None and top not in chains:
                chain, frame = [], sys._getframe(1)
                while frame is not None:
                    module = frame.f_globals.get("__name__", "?")
                    if not frame.f_code.co_filename.startswith("<frozen"):
                        where = f"{module}:{frame.f_lineno}"
                        if not chain or chain[-1].split(":")[0] != module:
                            chain.append(where)
                    frame = frame.f_back
                chains[top] = list(reversed(chain)) + [name]
            return None

    sys.meta_path.insert(0, Witness())
    from cli import main

    codes = []
    for argv in runs:
        try:
            main(argv, standalone_mode=False)
            codes.append(0)
        except SystemExit as e:
            codes.append(e.code)
    with open(out_path, "w") as f:
        json.dump({"codes": codes, "chains": chains}, f)
    """
)


def imported_by(runs: list[list[str]], watched: tuple[str, ...], tmp_path: Path) -> dict[str, str]:
    """Run the CLI invocations in one fresh interpreter; returns {watched module imported:
    "module:line -> module:line -> module"} for each one that got imported."""
    out = tmp_path / "witness.json"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(watched), str(out), json.dumps(runs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "80", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0 and out.exists(), done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["codes"] == [0] * len(runs), (result["codes"], done.stderr[-3000:])
    return {top: " -> ".join(chain) for top, chain in result["chains"].items()}


def explain(found: dict[str, str]) -> str:
    lines = [f"  {top}: {chain}" for top, chain in sorted(found.items())]
    return (
        "heavy modules imported at start-up (import them inside the function that needs "
        "them):\n" + "\n".join(lines)
    )


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    paths = []
    for name, command in group.commands.items():
        path = (*prefix, name)
        paths.append(list(path))
        if isinstance(command, click.Group):
            paths += command_paths(command, path)
    return paths


def test_help_of_every_command_loads_nothing_heavy(tmp_path: Path) -> None:
    runs = [["--help"]] + [[*path, "--help"] for path in command_paths(main)]
    assert len(runs) > 20
    found = imported_by(runs, HEAVY + HELP_ALSO_WITHOUT, tmp_path)
    assert not found, explain(found)


@pytest.fixture
def one_session_sqlite(sqlite_url: str) -> str:
    with open_store(sqlite_url) as store:
        simple_session("3f2a9c1e0b7d4e21").append_to(store)
    return sqlite_url


def test_browsing_a_sqlite_store_loads_nothing_heavy(
    one_session_sqlite: str, tmp_path: Path
) -> None:
    url = one_session_sqlite
    listing = [["sessions", "list", "--db", url], ["sessions", "list", "--json", "--db", url]]
    found = imported_by(listing, (*HEAVY, *SQLITE_ALSO_WITHOUT, "rich"), tmp_path)
    assert not found, explain(found)
    found = imported_by(
        [["sessions", "show", "3f2a", "--db", url]], HEAVY + SQLITE_ALSO_WITHOUT, tmp_path
    )
    assert not found, explain(found)


def test_intents_space_loads_nothing_heavy(tmp_path: Path) -> None:
    found = imported_by([["intents", "space", "--personas", "1000"]], HEAVY, tmp_path)
    assert not found, explain(found)


def test_the_witness_names_the_module_that_imported(tmp_path: Path) -> None:
    """The guard can fail, and says where: a package (or a dotted subpackage) that gets
    imported is reported with the chain of modules down to the import."""
    out = tmp_path / "witness.json"
    script = CHILD.replace("from cli import main", "import ise_es.intents.dedup\nmain = None")
    subprocess.run(
        [sys.executable, "-c", script, json.dumps(["numpy", "ise_es.intents"]), str(out), "[]"],
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    chains = json.loads(out.read_text())["chains"]
    assert chains["ise_es.intents"][-1] == "ise_es.intents"
    numpy = chains["numpy"]
    assert numpy[0].startswith("__main__:") and numpy[-1] == "numpy"
    assert any(link.startswith("ise_es.intents.dedup:") for link in numpy), numpy


def test_revision_check_without_alembic_agrees_with_alembic(empty_db_url: str) -> None:
    """Opening a store reads the head from the migration files and the database's revision
    with plain SQL (on SQLite through sqlite3 alone); both agree with what Alembic itself says,
    before and after migrating."""
    import sqlalchemy as sa

    from ise_es.store import migrate
    from ise_es.store.engine import normalize_url

    assert migrate.file_head() == migrate.head()
    seen = []
    for step in ("empty", "migrated"):
        if step == "migrated":
            migrate.upgrade(empty_db_url)
        engine = sa.create_engine(normalize_url(empty_db_url))
        try:
            with engine.connect() as conn:
                seen.append(migrate._stored_revision(conn))
                assert seen[-1] == migrate._revision_of(conn)
                if conn.dialect.name == "sqlite":
                    raw = conn.connection.dbapi_connection
                    assert migrate._sqlite_stored_revision(raw) == seen[-1]  # type: ignore[arg-type]
        finally:
            engine.dispose()
    assert seen == [None, migrate.head()]
