"""The conformance suite on the `local` backend (bubblewrap over overlayfs), plus what only it
has: the missing-bubblewrap error and its mounts and cgroup."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ise_es.errors import SandboxUnavailable
from ise_es.sandbox import Sandbox, open_sandbox
from ise_es.sandbox.bwrap import LocalSandbox
from tests.sandbox.conformance import SandboxConformance
from tests.sandbox.conftest import OpenSandbox


def mounted(path: str) -> bool:
    return any(line.split()[1] == path for line in Path("/proc/mounts").read_text().splitlines())


class TestLocal(SandboxConformance):
    backend = "local"

    def assert_freed(self, sb: Sandbox) -> None:
        assert isinstance(sb, LocalSandbox)
        assert not mounted(sb.merged)
        assert not os.path.exists(sb.state_dir)
        assert sb.cgroup is None or not os.path.exists(sb.cgroup)

    def test_workspace_is_an_overlay_of_the_template(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        assert isinstance(sb, LocalSandbox)
        assert mounted(sb.merged)
        sb.exec("echo x > fresh")
        assert Path(sb.upper, "fresh").read_text() == "x\n"
        assert sorted(os.listdir(sb.upper)) == ["fresh"]

    def test_scratch_places_live_in_the_state_dir(self, make_sandbox: OpenSandbox) -> None:
        """/tmp, /var/tmp and /dev/shm are host directories of this sandbox: on disk beside
        the workspace's changes (counted in its disk use), gone at close."""
        sb = make_sandbox()
        assert isinstance(sb, LocalSandbox)
        r = sb.exec("head -c 100000 /dev/zero > /tmp/big; echo v > /var/tmp/v; echo s > /dev/shm/s")
        assert r.exit_code == 0, r.stderr
        state = Path(sb.state_dir)
        assert (state / "tmp" / "big").stat().st_size == 100_000
        assert (state / "var-tmp" / "v").read_text() == "v\n"
        assert (state / "shm" / "s").read_text() == "s\n"
        assert os.listdir(sb.upper) == []
        sb.close()
        assert not state.exists()

    def test_process_limit_comes_from_a_pids_cgroup(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        assert isinstance(sb, LocalSandbox)
        assert sb.cgroup is not None, "running as root needs the pids cgroup for a process cap"
        assert Path(sb.cgroup, "pids.max").read_text().strip() == str(sb.limits.processes)
        assert sb.limits_enforced["processes"]


def test_missing_bubblewrap_is_a_clear_error(blobs: object, tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="apt-get install -y bubblewrap"):
        open_sandbox("local", "empty", blobs=None, bwrap_path=str(tmp_path / "no-bwrap"))
    assert not any(p.name.startswith("ise-es-sbx-") for p in tmp_path.iterdir())


def test_sandbox_of_a_killed_process_is_freed_by_the_next_one(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from ise_es.sandbox import open_sandbox\n"
        f"sb = open_sandbox('local', 'notes', blobs=None, state_root={str(tmp_path)!r})\n"
        "print(sb.merged, sb.cgroup, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    merged, cgroup = child.stdout.readline().split()
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert mounted(merged)
    with open_sandbox("local", "empty", blobs=None, state_root=str(tmp_path)):
        assert not mounted(merged)
        assert not os.path.exists(os.path.dirname(merged))
        assert cgroup == "None" or not os.path.exists(cgroup)
