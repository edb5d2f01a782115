"""Helpers for the replay tests: record scenarios through the real `ise-es record`, replay them
through the real `ise-es replay`, and small workspace templates a test may change."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import main
from ise_es.store.sql import open_store
from replay.corpus import select_sessions

HERE = Path(__file__).resolve().parent
SCENARIOS = HERE / "scenarios"
ROOT = HERE.parents[1]
SHIPPED = ROOT / "ise_es" / "data" / "scenarios"


def record(db_url: str, scenario: Path, *, template: Path | str | None = None) -> list[str]:
    """Record a scenario file or directory; returns every session id in the store, oldest
    first."""
    args = ["record", "--scenario", str(scenario), "--db", db_url]
    if template is not None:
        args += ["--template", str(template)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with open_store(db_url) as store:
        return [s.removeprefix("session-") for s in select_sessions(store)]


def replay(db_url: str, *args: str) -> tuple[int, dict[str, Any], str]:
    """`ise-es replay ARGS --json`: exit code, the parsed report, stderr."""
    result = CliRunner().invoke(main, ["replay", *args, "--json", "--db", db_url])
    assert result.stdout.strip(), f"no JSON on stdout: {result.output}"
    return result.exit_code, json.loads(result.stdout), result.stderr


def replay_text(db_url: str, *args: str) -> tuple[int, str, str]:
    """`ise-es replay ARGS` (the human report): exit code, stdout, stderr."""
    # Wide enough that rich does not wrap the lines the tests look for.
    result = CliRunner().invoke(main, ["replay", *args, "--db", db_url], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def single_scenario(tmp_path: Path, name: str) -> Path:
    """A directory holding only scenario `name` (so `record` picks exactly that one)."""
    directory = tmp_path / f"scenario-{name}"
    directory.mkdir(exist_ok=True)
    shutil.copy(SCENARIOS / f"{name}.yaml", directory / f"{name}.yaml")
    return directory


@pytest.fixture
def data_template(tmp_path: Path) -> Path:
    """A template with a data file and a script that checks it (exit 0 while it holds 'beta')."""
    root = tmp_path / "templates" / "data"
    root.mkdir(parents=True)
    (root / "data.txt").write_text("alpha\nbeta\n")
    (root / "check.sh").write_text("grep -q beta data.txt && echo ok\n")
    return root


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        return single_scenario(tmp_path, name)

    return make
