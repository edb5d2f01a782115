"""Cross-backend replay: a session recorded on one sandbox backend replayed on the other, from
the same template directory (the docker backend bakes it into an image layer)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ise_es.events import ReplayStarted
from ise_es.sandbox import load_template
from ise_es.store.sql import open_store
from replay.runner import ReplayOptions, replay_session
from tests.replay.conftest import record

pytestmark = pytest.mark.docker


def test_local_recording_replays_on_docker_and_reports_what_differs(
    sqlite_url: str,
    scenario_dir: Callable[[str], Path],
    data_template: Path,
    docker_client: Any,
) -> None:
    (sid,) = record(sqlite_url, scenario_dir("crossbackend"), template=data_template)
    with open_store(sqlite_url) as store:
        report = replay_session(
            store, sid, ReplayOptions(backend="docker", sandbox_options={"client": docker_client})
        )
        started = store.read_stream(f"replay-{report.replay_id}")[0].data
    assert isinstance(started, ReplayStarted) and started.sandbox_backend == "docker"
    assert (report.recorded_backend, report.sandbox_backend) == ("local", "docker")
    assert report.template_digest == load_template(str(data_template)).digest
    assert "cross-backend replay: recorded on local, replayed on docker" in report.notes
    ls_root, portable = report.steps
    # bubblewrap binds a few system directories at /, a container has a whole Debian root:
    # reported as a divergence with its diff, not hidden.
    assert ls_root.verdict == "diverged"
    stdout = next(d for d in ls_root.differences if d.field == "stdout")
    assert stdout.diff.startswith("--- recorded\n+++ replayed\n") and "+home" in stdout.diff
    assert (portable.verdict, portable.after_divergence) == ("identical", True)
    assert report.exit_code == 1


def test_docker_recording_replays_on_local(
    sqlite_url: str,
    scenario_dir: Callable[[str], Path],
    data_template: Path,
    docker_client: Any,
) -> None:
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(
        main,
        [
            "record",
            "--scenario",
            str(scenario_dir("steady")),
            "--template",
            str(data_template),
            "--sandbox",
            "docker",
            "--db",
            sqlite_url,
        ],
    )
    assert result.exit_code == 0, result.output
    with open_store(sqlite_url) as store:
        (stream,) = [s.stream_id for s in store.streams("session-")]
        report = replay_session(store, stream, ReplayOptions(backend="local"))
    assert (report.recorded_backend, report.sandbox_backend) == ("docker", "local")
    assert report.status == "reproduced", [s.differences for s in report.steps]
    assert report.counts["identical"] == 4
