"""The `docker` backend: one container per sandbox, started from image layers.

The workspace is part of the image (`dockerimage.template_image` bakes a directory template in
as one layer, once per template digest), not copied in at start: a container then costs the same
whatever the template's size, and the engine's change list (`container.diff()`) is exactly what
the session changed. The container runs `sleep infinity` under docker-init with no network,
memory and pids limits, rlimits, no capabilities, `no-new-privileges`, as uid 1000; every
command is a `docker exec` as that user.

Files are read, written and hashed through the container's merged overlay2 directory on the
host (what `docker cp` does inside the engine), so this backend needs a local engine with the
overlay2 storage driver; it says so at start otherwise. The set of changed paths comes from the
container's overlay upper directory when it is a plain one (cost follows the changes, as for
`local`), else from the engine's change list (`container.diff()`), which this engine computes
by walking the whole root filesystem (~1 s per call here). Timeouts kill the exec's process tree on
the host: every process descending from the exec, or in a session one of them leads.

/tmp, /var/tmp and /dev/shm are the container's own and keep what commands leave there until
`close` removes the container, like the local backend's; HOME is the workspace on both. `diff`
covers the workspace only (both change sources are cut to it), as on `local`: scratch space
outside it is the machine's, not the session's work. Programs start as `launch` describes, so a
missing or non-executable program fails with 127 or 126 like a shell, not with the engine's
"OCI runtime exec failed" 126 for both.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from ise_es.errors import SandboxUnavailable, TemplateError
from ise_es.events import FileChange
from ise_es.sandbox.base import ChunkCallback, ExecResult, Limits, Sandbox, Snapshot
from ise_es.sandbox.capture import BlobSink, StreamCapture, captured_result
from ise_es.sandbox.dockerimage import (
    BASE_IMAGE,
    SANDBOX_UID,
    WORKSPACE,
    docker_client,
    template_image,
)
from ise_es.sandbox.fsdiff import (
    ChangeTracker,
    PathState,
    UpperMap,
    scan_overlay_upper,
    state_from_stat,
)
from ise_es.sandbox.launch import check_environment, launch_argv, sandbox_workdir
from ise_es.sandbox.owners import owner_alive, owner_token
from ise_es.sandbox.paths import (
    read_workspace_file,
    workspace_relative,
    write_workspace_file,
)
from ise_es.sandbox.templates import Template

__all__ = ["DockerSandbox"]

_DRAIN_AFTER_KILL_S = 2.0
_IDLE_POLL_MIN_S = 0.02
_IDLE_POLL_MAX_S = 0.25
_KIND_DELETED = 2
_OWNER = (SANDBOX_UID, SANDBOX_UID)
_OWNER_LABEL = f"{socket.gethostname()}:{owner_token()}"
_reaped = False


class DockerSandbox(Sandbox):
    """A container per sandbox. Use `open_sandbox("docker", ...)`."""

    backend = "docker"

    def __init__(
        self,
        template: Template,
        *,
        blobs: BlobSink | None,
        limits: Limits,
        environment: Mapping[str, str],
        expected_digest: str | None = None,
        base_image: str = BASE_IMAGE,
        client: Any = None,
        change_source: Literal["auto", "upper", "engine"] = "auto",
    ) -> None:
        self._client = client if client is not None else docker_client()
        self._api = self._client.api
        self.template = template.name
        self.workspace_path = WORKSPACE
        self.limits = limits
        self.environment = dict(environment)
        self._blobs = blobs
        self._closed = False
        self._running: set[str] = set()
        self._running_lock = threading.Lock()
        image = template_image(self._client, template, base=base_image)
        self.template_digest = _image_digest(self._client, template, image, expected_digest)
        _reap_stale_containers(self._client)
        self._container = self._create(image)
        merged = self._start()
        self._root = os.path.join(merged, WORKSPACE.lstrip("/"))
        upper = self._container.attrs["GraphDriver"]["Data"].get("UpperDir")
        self._upper = os.path.join(upper, WORKSPACE.lstrip("/")) if upper else None
        if change_source == "auto":
            change_source = "upper" if self._upper and _plain_overlay(merged) else "engine"
        self.change_source = change_source
        self._tracker = ChangeTracker(
            template.manifest,
            self._scan,
            lambda rel: os.path.join(self._root, rel),
            blobs,
            limits.blob_cap_bytes,
        )

    def _create(self, image: str) -> Any:
        """The container (created, not started): no network, the limits, no capabilities."""
        from docker.types import Ulimit

        limits = self.limits
        try:
            return self._client.containers.create(
                image,
                command=["sleep", "infinity"],
                init=True,
                network_mode="none",
                hostname="sandbox",
                # The keeper (docker-init + sleep) runs as root without capabilities, so that
                # `kill -9 -1` by the sandbox user cannot stop the container; commands run as
                # uid 1000.
                user="0:0",
                working_dir=WORKSPACE,
                environment=self.environment,
                mem_limit=limits.memory_bytes,
                memswap_limit=limits.memory_bytes,
                pids_limit=limits.processes,
                ulimits=[
                    Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
                    Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                    Ulimit(name="core", soft=0, hard=0),
                ],
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                labels={
                    "ise-es.sandbox": "1",
                    "ise-es.owner": _OWNER_LABEL,
                    "ise-es.template-digest": self.template_digest,
                },
            )
        except Exception as e:
            raise SandboxUnavailable(f"cannot create a container from {image}: {e}") from e

    def _start(self) -> str:
        """Start the container and return its merged overlay directory on the host (removing
        the container when it does not start or has none)."""
        try:
            self._container.start()
            self._container.reload()
            merged = self._container.attrs.get("GraphDriver", {}).get("Data", {}).get("MergedDir")
            if not merged or not os.path.isdir(os.path.join(merged, WORKSPACE.lstrip("/"))):
                raise SandboxUnavailable(
                    "the docker backend needs a local engine with the overlay2 storage driver "
                    f"(no readable merged directory for container {self._container.short_id})"
                )
        except BaseException:
            self._remove()
            raise
        return str(merged)

    @property
    def container_id(self) -> str:
        return str(self._container.id)

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxUnavailable(f"sandbox {self._container.short_id} is closed")

    # -- commands -------------------------------------------------------------------------

    def exec(
        self,
        command: str | list[str],
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        workdir: str | None = None,
        on_chunk: ChunkCallback | None = None,
    ) -> ExecResult:
        self._check_open()
        cwd, argv = launch_argv(command, sandbox_workdir(workdir, WORKSPACE, self._root), WORKSPACE)
        check_environment(env or {})
        timeout = self.limits.default_timeout_s if timeout is None else timeout
        started = time.monotonic()
        exec_id, sock = self._start_exec(argv, cwd, {**self.environment, **(env or {})}, stdin)
        raw: socket.socket = getattr(sock, "_sock", sock)
        with self._running_lock:
            self._running.add(exec_id)
        try:
            timed_out, out, err = self._pump(raw, exec_id, stdin, started + timeout, on_chunk)
        finally:
            with self._running_lock:
                self._running.discard(exec_id)
            with contextlib.suppress(OSError):
                raw.close()
            with contextlib.suppress(Exception):
                sock.close()
        code = self._wait_exit(exec_id).get("ExitCode")
        return captured_result(
            out,
            err,
            self._blobs,
            exit_code=None if timed_out else code,
            signal=9 if timed_out else None,
            timed_out=timed_out,
            started=started,
        )

    def _start_exec(
        self, argv: list[str], cwd: str, environment: dict[str, str], stdin: bytes | None
    ) -> tuple[str, Any]:
        """Create and start the exec; (its id, the engine's socket to it)."""
        try:
            exec_id = self._api.exec_create(
                self._container.id,
                # The engine makes an exec's process a session leader: its host pid is the
                # session id of everything it starts, which is how a timeout finds them.
                argv,
                stdout=True,
                stderr=True,
                stdin=bool(stdin),
                environment=environment,
                workdir=cwd,
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
            )["Id"]
            return exec_id, self._api.exec_start(exec_id, socket=True)
        except Exception as e:
            raise SandboxUnavailable(f"docker exec failed: {e}") from e

    def _pump(
        self,
        raw: socket.socket,
        exec_id: str,
        stdin: bytes | None,
        deadline: float,
        on_chunk: ChunkCallback | None,
    ) -> tuple[bool, StreamCapture, StreamCapture]:
        """Feed stdin and demultiplex the output until the stream ends or the deadline (plus
        a grace period after the kill) passes; (timed out, stdout, stderr)."""
        frames = _Frames(self.limits, on_chunk)
        pending = memoryview(stdin or b"")
        if not pending:
            _shut_write(raw)
        raw.setblocking(False)
        timed_out = False
        # When the command has exited but background processes it left still hold its output,
        # the engine keeps the stream open for ~2 s: poll the exec's state while output is idle
        # and end those leftovers (as the local backend's PID namespace does).
        idle = _IDLE_POLL_MIN_S
        finished = False
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    if timed_out:
                        break
                    timed_out = True
                    self._kill_exec(exec_id)
                    deadline = now + _DRAIN_AFTER_KILL_S
                    continue
                ready, writable, _ = select.select(
                    [raw], [raw] if pending else [], [], min(deadline - now, idle)
                )
                if not ready and not writable and not timed_out and not finished:
                    idle = min(idle * 2, _IDLE_POLL_MAX_S)
                    finished = self._end_if_exited(exec_id)
                    continue
                idle = _IDLE_POLL_MIN_S
                if writable:
                    pending = _send_stdin(raw, pending)
                if ready and not frames.receive(raw):
                    break
        except BaseException:
            self._kill_exec(exec_id)
            raise
        return timed_out, frames.stdout, frames.stderr

    def _end_if_exited(self, exec_id: str) -> bool:
        """True (after killing what it left running) once the exec's command has exited."""
        if self._api.exec_inspect(exec_id).get("Running"):
            return False
        self._kill_exec(exec_id)
        return True

    def _wait_exit(self, exec_id: str) -> dict[str, Any]:
        """The exec's final state. Output has ended; what still runs in its session are
        background processes of a finished command: they are killed, as the local backend's
        PID namespace does, so that no command outlives its tool call (long-running programs
        belong to the `process` tool)."""
        info: dict[str, Any] = self._api.exec_inspect(exec_id)
        for _ in range(100):
            if not info.get("Running"):
                break
            time.sleep(0.005)
            info = self._api.exec_inspect(exec_id)
        self._kill_exec(exec_id)
        return info

    def kill_running(self) -> None:
        with self._running_lock:
            running = list(self._running)
        for exec_id in running:
            self._kill_exec(exec_id)

    def _kill_exec(self, exec_id: str) -> None:
        """SIGKILL the exec's process tree, seen from the host's /proc: its descendants and
        every process of a session one of them leads, remembered across rounds so that orphans
        of a dead session leader are still found."""
        with contextlib.suppress(Exception):
            pid = int(self._api.exec_inspect(exec_id).get("Pid") or 0)
            if pid <= 0:
                return
            pids: set[int] = {pid}
            sessions: set[int] = {pid}
            for _ in range(200):
                victims = _process_tree(pids, sessions, self.container_id)
                if not victims:
                    return
                for p in victims:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(p, 9)
                time.sleep(0.005)

    def interactive_argv(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> list[str]:
        self._check_open()
        cwd, inner = launch_argv(
            command, sandbox_workdir(workdir, WORKSPACE, self._root), WORKSPACE
        )
        argv = ["docker", "exec", "-i", "-t", "-u", f"{SANDBOX_UID}:{SANDBOX_UID}", "-w", cwd]
        for k, v in (env or {}).items():
            argv += ["-e", f"{k}={v}"]
        return [*argv, self.container_id, *inner]

    # -- files ----------------------------------------------------------------------------

    def read_file(self, path: str) -> bytes:
        self._check_open()
        return read_workspace_file(path, WORKSPACE, self._root)

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        self._check_open()
        write_workspace_file(path, data, WORKSPACE, self._root, mode=mode, owner=_OWNER)

    # -- diffs ----------------------------------------------------------------------------

    def _scan(self) -> UpperMap:
        self._check_open()
        if self.change_source == "upper" and self._upper is not None:
            return scan_overlay_upper(self._upper)
        return self._scan_engine()

    def _scan_engine(self) -> UpperMap:
        """The engine's change list. Some engines compute it by walking the whole root
        filesystem (overlay2 "naive diff"), about 1 s here, hence the upper-directory route."""
        out: UpperMap = {}
        for ch in self._container.diff() or []:
            path = ch["Path"]
            if not path.startswith(WORKSPACE + "/"):
                continue
            rel = "/".join(workspace_relative(path, WORKSPACE))
            if ch["Kind"] == _KIND_DELETED:
                out[rel] = PathState(kind="whiteout")
                continue
            host = os.path.join(self._root, rel)
            try:
                out[rel] = state_from_stat(host, os.lstat(host))
            except FileNotFoundError:
                continue  # removed between the engine's list and our look
        return out

    def snapshot(self) -> Snapshot:
        return Snapshot(self._tracker.snapshot())

    def diff(self, since: Snapshot) -> list[FileChange]:
        return self._tracker.diff(since.token)

    # -- lifecycle ------------------------------------------------------------------------

    def _remove(self) -> None:
        with contextlib.suppress(Exception):
            self._container.remove(force=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._remove()


class _Frames:
    """The engine's multiplexed exec stream (frames of: 1 byte stream, 3 zero bytes, 4 bytes
    big-endian length, payload) split into the stdout and stderr captures."""

    def __init__(self, limits: Limits, on_chunk: ChunkCallback | None) -> None:
        self.stdout = StreamCapture(limits.output_head_bytes, limits.blob_cap_bytes)
        self.stderr = StreamCapture(limits.output_head_bytes, limits.blob_cap_bytes)
        self._caps: dict[int, tuple[Literal["stdout", "stderr"], StreamCapture]] = {
            1: ("stdout", self.stdout),
            2: ("stderr", self.stderr),
        }
        self._on_chunk = on_chunk
        self._buf = bytearray()

    def receive(self, raw: socket.socket) -> bool:
        """Read what the socket has and dispatch the complete frames; False at its end."""
        try:
            data = raw.recv(1 << 16)
        except BlockingIOError:
            return True
        if not data:
            return False
        buf = self._buf
        buf += data
        while len(buf) >= 8:
            stream, size = buf[0], struct.unpack(">I", buf[4:8])[0]
            if len(buf) < 8 + size:
                break
            payload = bytes(buf[8 : 8 + size])
            del buf[: 8 + size]
            if stream in self._caps and payload:
                name, cap = self._caps[stream]
                cap.feed(payload)
                if self._on_chunk is not None:
                    self._on_chunk(name, payload)
        return True


def _send_stdin(raw: socket.socket, pending: memoryview) -> memoryview:
    """Send what the socket takes of `pending`; what is left (the write side is shut once
    everything went, or once the command stopped reading)."""
    try:
        pending = pending[raw.send(pending[: 1 << 16]) :]
    except BlockingIOError:
        pass
    except OSError:
        pending = pending[len(pending) :]  # the command stopped reading
    if not pending:
        _shut_write(raw)
    return pending


def _shut_write(raw: socket.socket) -> None:
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)


def _image_digest(client: Any, template: Template, image: str, expected: str | None) -> str:
    """The template's digest: the image id for an image template, else the directory's.

    Raises:
        TemplateError: no such image, or not the digest `expected`.
    """
    if template.kind == "image":
        try:
            digest = str(client.images.get(image).id)
        except Exception as e:
            raise TemplateError(f"template {template.name!r}: no image {image}") from e
    else:
        digest = template.digest
    if expected is not None and digest != expected:
        raise TemplateError(f"template {template.name!r} has digest {digest}, expected {expected}")
    return digest


def _process_tree(pids: set[int], sessions: set[int], container_id: str) -> list[int]:
    """Live processes of the container in `pids`, descending from them, or in one of
    `sessions`; both sets grow with what is found (every process found may lead a session).
    Membership in the container's cgroup is checked so that a recycled pid is never hit."""
    parent: dict[int, int] = {}
    session: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue  # already dead, waiting to be reaped
        parent[int(entry)] = int(fields[1])
        session[int(entry)] = int(fields[3])
    found: set[int] = set()
    changed = True
    while changed:
        changed = False
        for pid, ppid in parent.items():
            if pid not in found and (pid in pids or ppid in found or session[pid] in sessions):
                found.add(pid)
                changed = True
    found = {p for p in found if _in_container(p, container_id)}
    pids |= found
    sessions |= found
    return sorted(found)


def _in_container(pid: int, container_id: str) -> bool:
    try:
        return container_id in Path("/proc", str(pid), "cgroup").read_text()
    except OSError:
        return False


def _plain_overlay(merged: str) -> bool:
    """True when `merged` is an overlay mount whose upper directory alone holds every change
    (no redirect_dir or metacopy entries), so it can be read like the local backend's."""
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == merged and fields[2] == "overlay":
            opts = fields[3].split(",")
            if "redirect_dir=on" in opts or "metacopy=on" in opts:
                return False
            return all(
                Path(f"/sys/module/overlay/parameters/{p}").read_text().strip() in ("N", "n")
                or f"{p}=off" in opts
                for p in ("redirect_dir", "metacopy")
                if Path(f"/sys/module/overlay/parameters/{p}").exists()
            )
    return False


def _reap_stale_containers(client: Any) -> None:
    """Remove this host's sandbox containers whose process died without closing them."""
    global _reaped
    if _reaped:
        return
    _reaped = True
    host = socket.gethostname() + ":"
    with contextlib.suppress(Exception):
        for c in client.containers.list(all=True, filters={"label": "ise-es.sandbox=1"}):
            owner = c.labels.get("ise-es.owner", "")
            if owner.startswith(host) and not owner_alive(owner[len(host) :]):
                c.remove(force=True)
