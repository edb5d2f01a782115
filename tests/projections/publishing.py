"""Corpora for the publishing tests: the shipped scripted scenarios, recorded for real through
`ise-es record` (every tool call runs in the local sandbox), and the CLI runner."""

from __future__ import annotations

import os
import time
from pathlib import Path

from click.testing import CliRunner

from cli import main
from ise_es.store.sql import open_store

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
    wait_visible(db_url)


def wait_visible(db_url: str) -> None:
    """Wait until catch-up readers see every event. On PostgreSQL they take only rows below
    the oldest running transaction of the whole server (see ise_es.store.sql), and other test
    runs share the server, so a session just recorded may stay invisible to an export a moment.
    """
    with open_store(db_url) as store:
        last = max(
            store.read_stream(s.stream_id)[-1].position
            for s in store.streams(stream_type="session")
        )
        deadline = time.monotonic() + 60
        while not any(e.position == last for e in store.read_all(last - 1, 1000)):
            if time.monotonic() > deadline:
                raise AssertionError(f"position {last} never became visible to catch-up")
            time.sleep(0.05)
