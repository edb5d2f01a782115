"""A non-editable install serves the shipped scenarios, templates, fixture web and prompts.

The checkout is built into a wheel, the wheel installed with pip into a target directory, and
the installed `ise-es` run by a fresh interpreter (a venv with no site-packages of its own)
from a directory outside the checkout. Its dependencies come from this venv's site-packages on
PYTHONPATH, where `.pth` files are not processed, so the editable install's finder that maps
`ise_es` to the checkout never loads: only the wheel's files can answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ise_es.events import SessionEnded, SessionStarted
from ise_es.sandbox.templates import load_template
from ise_es.store.sql import open_store

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "out", "build", "*.db", "__pycache__", "*.egg-info", ".*_cache", "ise-es.db*"
)


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd}: {result.stdout}\n{result.stderr}"
    return result  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], dict[str, str], Path]:
    """(command prefix running the installed ise-es, its environment, the install target)."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "src"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(base)])
    [wheel] = base.glob("ise_es-*.whl")
    target = base / "target"
    # umask 022, as on a usual install: template digests cover permission bits.
    old = os.umask(0o022)
    try:
        _run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)])
    finally:
        os.umask(old)
    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ISE_ES_", "PYTHON", "VIRTUAL"))
    }
    env["PYTHONPATH"] = f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}"
    env["XDG_CACHE_HOME"] = str(base / "cache")
    return [str(venv / "bin" / "python"), str(target / "bin" / "ise-es")], env, target


@pytest.mark.slow
def test_installed_wheel_records_the_shipped_scenarios_from_outside_the_checkout(
    installed: tuple[list[str], dict[str, str], Path], tmp_path: Path
) -> None:
    ise, env, target = installed
    python = ise[0]
    where = _run(
        [python, "-c", "import ise_es, cli; print(ise_es.__file__); print(cli.__file__)"],
        env=env,
        cwd=tmp_path,
    ).stdout.split()
    assert all(Path(p).is_relative_to(target) for p in where), where
    # pip byte-compiled the template's Python files: the case the template lookup must undo.
    assert list((target / "ise_es" / "data" / "templates" / "pyproject").rglob("__pycache__"))

    db = f"sqlite:///{tmp_path / 'corpus.db'}"
    _run([*ise, "db", "upgrade", "--db", db], env=env, cwd=tmp_path)
    _run([*ise, "record", "--scenario", "shipped", "--db", db], env=env, cwd=tmp_path)
    with open_store(db) as store:
        streams = store.streams("session-")
        events = [[e.data for e in store.read_stream(s.stream_id)] for s in streams]
    started = [e[0] for e in events]
    assert all(isinstance(s, SessionStarted) for s in started)
    assert sorted(s.scenario or "" for s in started if isinstance(s, SessionStarted)) == sorted(
        p.stem for p in (ROOT / "ise_es" / "data" / "scenarios").glob("*.yaml")
    )
    assert all(isinstance(e[-1], SessionEnded) and e[-1].status == "completed" for e in events)
    for s in started:
        assert isinstance(s, SessionStarted)
        if s.template != "empty":  # the same digest as a checkout recording
            assert (
                s.template_digest
                == load_template(str(ROOT / "ise_es/data/templates" / s.template)).digest
            )
    digest = _run([*ise, "sandbox", "template-digest", "pyproject"], env=env, cwd=tmp_path)
    assert (
        digest.stdout.strip() == load_template(str(ROOT / "ise_es/data/templates/pyproject")).digest
    )
