"""The conformance suite on the `docker` backend (one container per sandbox)."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from ise_es.sandbox import Sandbox
from ise_es.sandbox.docker import DockerSandbox
from tests.sandbox.conformance import SandboxConformance
from tests.sandbox.conftest import OpenSandbox

pytestmark = pytest.mark.docker


class TestDocker(SandboxConformance):
    backend = "docker"

    def assert_freed(self, sb: Sandbox) -> None:
        assert isinstance(sb, DockerSandbox)
        client = sb._client
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(sb.container_id)

    def test_container_is_locked_down(self, make_sandbox: OpenSandbox, docker_client: Any) -> None:
        sb = make_sandbox()
        assert isinstance(sb, DockerSandbox)
        host = docker_client.api.inspect_container(sb.container_id)["HostConfig"]
        assert host["NetworkMode"] == "none"
        assert host["PidsLimit"] == sb.limits.processes
        assert host["Memory"] == sb.limits.memory_bytes
        assert host["CapDrop"] == ["ALL"]

    def test_engine_change_list_agrees_with_upper_dir(self, make_sandbox: OpenSandbox) -> None:
        sb = make_sandbox()
        assert isinstance(sb, DockerSandbox) and sb.change_source == "upper"
        mark = sb.snapshot()
        sb.exec(
            "echo n > new; echo '#' >> README.md; rm pyproject.toml; chmod 700 tests; "
            "ln -s new link; rm -rf src && mkdir src && echo y > src/other"
        )
        via_upper = sb.diff(mark)
        sb.change_source = "engine"
        assert sb.diff(mark) == via_upper
        assert {c.kind for c in via_upper} == {"added", "modified", "deleted", "mode", "symlink"}


def test_container_of_a_killed_process_is_removed(docker_client: Any) -> None:
    import signal
    import subprocess
    import sys

    from ise_es.sandbox import docker as docker_backend

    script = (
        "import time\n"
        "from ise_es.sandbox import open_sandbox\n"
        "sb = open_sandbox('docker', 'empty', blobs=None)\n"
        "print(sb.container_id, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    container_id = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert docker_client.containers.get(container_id).status == "running"
    docker_backend._reaped = False  # once per process: pretend this one just started
    docker_backend._reap_stale_containers(docker_client)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(container_id)
