"""Corpora for the publishing tests: the shipped scripted scenarios, recorded for real through
`ise-es record` (every tool call runs in the local sandbox), and the CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from cli import main

# The datasets library must never reach a hub here; set before it is first imported.
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = next(
    p
    for p in (ROOT / "ise_es" / "data" / "scenarios", ROOT / "fixtures" / "scenarios")
    if p.is_dir()
)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def record_scenarios(db_url: str, scenarios: Path = SCENARIOS) -> None:
    code, out, err = run("record", "--scenario", str(scenarios), "--db", db_url)
    assert code == 0, out + err
