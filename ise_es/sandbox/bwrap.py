"""The `local` backend: bubblewrap over an overlayfs workspace.

Per sandbox, an overlayfs is mounted on the host (lower = the template directory, upper/work in
a private state directory), so a new workspace costs one mount whatever the template's size, and
the upper directory holds exactly what changed (which is what `diff` reads). Every command runs
in a fresh bubblewrap with its own user, PID, IPC, UTS and cgroup namespaces (killing bubblewrap
kills everything the command started, background processes included, when it ends), as uid 1000
`sandbox` with no capabilities, seeing only read-only system directories, a generated /etc (no
secrets), a private /dev, and the workspace at /tmp/workspace, which is also HOME (the sandbox
user's home directory, as in the docker image). /tmp, /var/tmp and /dev/shm are per-sandbox host
directories in the state directory, bound writable (the workspace is bound over /tmp/workspace
after /tmp), so what a command leaves there is still there for the next command, as on a real
machine and in a container, until `close` removes the state directory; they count in its disk
use like the workspace's changes. `diff` covers the workspace only, as on docker. The
network namespace is the sandbox's own, made once at start with loopback only (no route out),
like a container's with network "none"; making a fresh one per command cost ~8 ms each.

Limits: rlimits (address space, file size, open files, processes) are set in the child before
bubblewrap starts and are inherited by everything inside. RLIMIT_NPROC does not bind processes
whose host uid is root (and the user namespace maps the sandbox user to the caller's uid), so when
running as root the process limit comes from a per-sandbox `pids` cgroup; without a writable
pids cgroup a root caller gets no process limit and the sandbox says so (`limits_enforced`).

Running as root is required for the kernel overlay mount. A non-root route would be
fuse-overlayfs (installed here) or a user-namespace overlay on kernels >= 5.11; it is not
implemented: a non-root caller gets `SandboxUnavailable` rather than an unsandboxed fallback.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import resource
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path

from ise_es.errors import SandboxUnavailable, TemplateError
from ise_es.events import FileChange
from ise_es.sandbox.base import ChunkCallback, ExecResult, Limits, Sandbox, Snapshot
from ise_es.sandbox.capture import BlobSink
from ise_es.sandbox.cgroups import kill_cgroup, make_pids_cgroup, pids_root, remove_cgroup
from ise_es.sandbox.fsdiff import ChangeTracker, UpperMap, scan_overlay_upper
from ise_es.sandbox.launch import check_environment, launch_argv, sandbox_workdir
from ise_es.sandbox.owners import owner_alive, owner_token
from ise_es.sandbox.paths import read_workspace_file, write_workspace_file
from ise_es.sandbox.runner import pump
from ise_es.sandbox.templates import Template

__all__ = ["DEFAULT_BWRAP", "SANDBOX_UID", "WORKSPACE", "LocalSandbox", "base_environment"]

log = logging.getLogger(__name__)

DEFAULT_BWRAP = "/usr/bin/bwrap"
WORKSPACE = "/tmp/workspace"
SANDBOX_UID = 1000
SANDBOX_USER = "sandbox"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Host /etc entries a userland needs and that hold no secrets: alternatives links (awk, editor,
# python...), the dynamic loader cache, Python's site configuration.
_ETC_PASSTHROUGH = ("alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "python3")
_MS_NOSUID, _MS_NODEV, _MS_BIND = 2, 4, 4096
_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_IFREQ = "16sH22x"
_STATE_PREFIX = "ise-es-sbx-"
# Writable places outside the workspace: their host directories in the state directory.
_SCRATCH_DIRS = {"/tmp": "tmp", "/var/tmp": "var-tmp", "/dev/shm": "shm"}
_MNT_DETACH = 2

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def base_environment() -> dict[str, str]:
    """What every command sees before the pinned environment and per-call variables."""
    return {
        "PATH": PATH,
        "HOME": WORKSPACE,
        "USER": SANDBOX_USER,
        "LOGNAME": SANDBOX_USER,
        "SHELL": "/bin/bash",
        "TERM": "dumb",
    }


def _checked_host(template: Template, bwrap_path: str) -> str:
    """The template's directory, once this host can run the local backend on it.

    Raises:
        TemplateError: not a directory template, or a path overlayfs options cannot carry.
        SandboxUnavailable: no bubblewrap, or not root.
    """
    if template.kind != "dir" or template.path is None:
        raise TemplateError(f"template {template.name!r}: the local backend needs a directory")
    if not (os.path.isfile(bwrap_path) and os.access(bwrap_path, os.X_OK)):
        raise SandboxUnavailable(
            f"bubblewrap not found at {bwrap_path}: the local sandbox needs it "
            "(apt-get install -y bubblewrap), or use --sandbox docker"
        )
    if os.geteuid() != 0:
        raise SandboxUnavailable(
            "the local sandbox mounts overlayfs and must run as root here "
            "(a fuse-overlayfs route for non-root users is not implemented); "
            "run as root or use --sandbox docker"
        )
    if any(c in template.path for c in ",:\\"):
        raise TemplateError(
            f"template {template.name!r}: its path {template.path} contains ',', ':' or "
            "'\\', which overlayfs options cannot carry; move it"
        )
    return template.path


class LocalSandbox(Sandbox):
    """A workspace on overlayfs plus bubblewrap per command. Use `open_sandbox("local", ...)`."""

    backend = "local"

    def __init__(
        self,
        template: Template,
        *,
        blobs: BlobSink | None,
        limits: Limits,
        environment: Mapping[str, str],
        bwrap_path: str = DEFAULT_BWRAP,
        state_root: str | None = None,
    ) -> None:
        template_dir = _checked_host(template, bwrap_path)
        self.template = template.name
        self.template_digest = template.digest
        self.workspace_path = WORKSPACE
        self.limits = limits
        self.environment = {**base_environment(), **environment}
        self._blobs = blobs
        self._bwrap = bwrap_path
        self._closed = False
        self._running: set[subprocess.Popen[bytes]] = set()
        self._running_lock = threading.Lock()
        _reap_stale_once(state_root)
        self._state = tempfile.mkdtemp(prefix=_STATE_PREFIX, dir=state_root)
        Path(self._state, "owner").write_text(owner_token())
        self.upper = os.path.join(self._state, "upper")
        self.merged = os.path.join(self._state, "merged")
        self._cgroup: str | None = None
        self._netns_fd: int | None = None
        self._finalizer = weakref.finalize(
            self, _cleanup, self._state, self.merged, None, mounted=False
        )
        try:
            etc = self._mount_state(template_dir)
            self._finalizer.detach()
            self._isolate()
        except BaseException:
            self._finalizer()
            raise
        self.limits_enforced = {
            "memory": True,
            "file_size": True,
            "open_files": True,
            "processes": self._cgroup is not None,
        }
        if self._cgroup is None:
            log.warning("no writable pids cgroup: the process limit is not enforced for root")
        self._argv_prefix = self._bwrap_args(etc)
        self._tracker = ChangeTracker(
            template.manifest,
            self._scan,
            lambda rel: os.path.join(self.upper, rel),
            blobs,
            limits.blob_cap_bytes,
        )

    def _mount_state(self, template_dir: str) -> str:
        """Lay out the state directory (overlay dirs, scratch dirs, /etc) and mount the
        workspace overlay on the template; returns the sandbox's /etc directory."""
        etc = os.path.join(self._state, "etc")
        for d in ("upper", "work", "merged"):
            os.mkdir(os.path.join(self._state, d), 0o755)
        for d in _SCRATCH_DIRS.values():
            os.mkdir(os.path.join(self._state, d))
            os.chmod(os.path.join(self._state, d), 0o1777)
        # The workspace's mount point, so that /tmp lists it as on docker.
        os.mkdir(os.path.join(self._state, "tmp", os.path.basename(WORKSPACE)), 0o755)
        _write_etc(etc)
        _mount_overlay(template_dir, self.upper, os.path.join(self._state, "work"), self.merged)
        return etc

    def _isolate(self) -> None:
        """The pids cgroup and the network namespace, and the finalizer that removes them with
        the mounted state."""
        self._cgroup = make_pids_cgroup(os.path.basename(self._state), self.limits.processes)
        self._netns = os.path.join(self._state, "netns")
        self._netns_fd = _make_netns(self._netns)
        self._finalizer = weakref.finalize(
            self,
            _cleanup,
            self._state,
            self.merged,
            self._cgroup,
            mounted=True,
            netns_fd=self._netns_fd,
        )

    # -- commands -------------------------------------------------------------------------

    def _bwrap_args(self, etc: str) -> list[str]:
        if self._netns_fd is not None:
            # The network namespace is the sandbox's own, made once (see _make_netns).
            args = [self._bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid"]
            args += ["--unshare-uts", "--unshare-cgroup-try", "--die-with-parent"]
        else:
            args = [self._bwrap, "--unshare-all", "--unshare-user", "--die-with-parent"]
        args += ["--new-session", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        args += ["--hostname", "sandbox", "--clearenv"]
        for d in _SYSTEM_DIRS:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            elif os.path.isdir(d):
                args += ["--ro-bind", d, d]
        args += ["--ro-bind", etc, "/etc"]
        for name in _ETC_PASSTHROUGH:
            if os.path.exists(os.path.join(etc, name)):
                args += ["--ro-bind", os.path.join("/etc", name), os.path.join("/etc", name)]
        args += ["--dev", "/dev", "--proc", "/proc"]
        for inside, name in _SCRATCH_DIRS.items():  # /tmp before the workspace inside it
            args += ["--bind", os.path.join(self._state, name), inside]
        args += ["--bind", self.merged, WORKSPACE, "--remount-ro", "/"]
        return args

    def _command_args(
        self, command: str | list[str], env: Mapping[str, str] | None, workdir: str | None
    ) -> list[str]:
        self._check_open()
        cwd, argv = launch_argv(
            command, sandbox_workdir(workdir, WORKSPACE, self.merged), WORKSPACE
        )
        args = list(self._argv_prefix)
        args += ["--chdir", cwd]
        variables = {**self.environment, **(env or {})}
        check_environment(variables)
        for k, v in variables.items():
            args += ["--setenv", k, v]
        return [*args, "--", *argv]

    def _preexec(self) -> None:
        lim = self.limits
        for res, value in (
            (resource.RLIMIT_AS, lim.memory_bytes),
            (resource.RLIMIT_FSIZE, lim.file_size_bytes),
            (resource.RLIMIT_NOFILE, lim.open_files),
            (resource.RLIMIT_NPROC, lim.processes),
            (resource.RLIMIT_CORE, 0),
        ):
            resource.setrlimit(res, (value, value))
        if self._netns_fd is not None and _libc.setns(self._netns_fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns to the sandbox's network namespace")
        if self._cgroup is not None:
            fd = os.open(os.path.join(self._cgroup, "cgroup.procs"), os.O_WRONLY)
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)

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
        args = self._command_args(command, env, workdir)
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={},
                preexec_fn=self._preexec,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            raise SandboxUnavailable(f"cannot start bubblewrap ({self._bwrap}): {e}") from e

        def kill() -> None:
            # bubblewrap's PID 1 dies with it (--die-with-parent), and the kernel then kills
            # every process of the namespace; the cgroup sweep covers the instant in between.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            kill_cgroup(self._cgroup)

        with self._running_lock:
            self._running.add(proc)
        try:
            return pump(
                proc,
                stdin=stdin,
                timeout=self.limits.default_timeout_s if timeout is None else timeout,
                limits=self.limits,
                blobs=self._blobs,
                on_chunk=on_chunk,
                kill=kill,
                started=started,
            )
        finally:
            with self._running_lock:
                self._running.discard(proc)

    def kill_running(self) -> None:
        with self._running_lock:
            running = list(self._running)
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
        kill_cgroup(self._cgroup)

    def interactive_argv(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
    ) -> list[str]:
        lim = self.limits
        inner = self._command_args(command, env, workdir)
        prlimit = shutil.which("prlimit") or "/usr/bin/prlimit"
        limited = [
            prlimit,
            f"--as={lim.memory_bytes}",
            f"--fsize={lim.file_size_bytes}",
            f"--nofile={lim.open_files}",
            f"--nproc={lim.processes}",
            "--core=0",
            "--",
            *(
                [shutil.which("nsenter") or "/usr/bin/nsenter", f"--net={self._netns}"]
                if self._netns_fd is not None
                else []
            ),
            *inner,
        ]
        if self._cgroup is None:
            return limited
        procs = os.path.join(self._cgroup, "cgroup.procs")
        return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', procs, *limited]

    # -- files ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise SandboxUnavailable(f"sandbox {self._state} is closed")

    def read_file(self, path: str) -> bytes:
        self._check_open()
        return read_workspace_file(path, WORKSPACE, self.merged)

    def write_file(self, path: str, data: bytes, mode: int | None = None) -> None:
        self._check_open()
        # Files the host's root creates appear inside as the sandbox user (the user namespace
        # maps the sandbox uid to the caller's), so no chown is needed.
        write_workspace_file(path, data, WORKSPACE, self.merged, mode=mode)

    # -- diffs ----------------------------------------------------------------------------

    def _scan(self) -> UpperMap:
        self._check_open()
        return scan_overlay_upper(self.upper)

    def snapshot(self) -> Snapshot:
        return Snapshot(self._tracker.snapshot())

    def diff(self, since: Snapshot) -> list[FileChange]:
        return self._tracker.diff(since.token)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def state_dir(self) -> str:
        return self._state

    @property
    def cgroup(self) -> str | None:
        return self._cgroup

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()


def _write_etc(etc: str) -> None:
    os.mkdir(etc, 0o755)
    u = SANDBOX_UID
    files = {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{SANDBOX_USER}:x:{u}:{u}:sandbox:{WORKSPACE}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"root:x:0:\n{SANDBOX_USER}:x:{u}:\nnogroup:x:65534:\n",
        "hostname": "sandbox\n",
        "hosts": "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
    }
    for name, text in files.items():
        Path(etc, name).write_text(text)
    # Mount points for the read-only binds of the host's harmless /etc entries.
    for name in _ETC_PASSTHROUGH:
        src = os.path.join("/etc", name)
        if os.path.isdir(src) and not os.path.islink(src):
            os.mkdir(os.path.join(etc, name))
        elif os.path.isfile(src):
            Path(etc, name).touch()
    # python3.11 and the like: found by prefix, the version varies between hosts.
    for entry in os.listdir("/etc"):
        if entry.startswith("python3."):
            os.mkdir(os.path.join(etc, entry))


def _mount_overlay(lower: str, upper: str, work: str, merged: str) -> None:
    # redirect_dir/metacopy off: a renamed or chmod-ed template entry is then copied up whole,
    # so the upper directory alone tells what changed (no redirect or metadata-only entries).
    opts = (
        f"lowerdir={lower},upperdir={upper},workdir={work},redirect_dir=off,metacopy=off,index=off"
    )
    rc = _libc.mount(b"overlay", merged.encode(), b"overlay", _MS_NOSUID | _MS_NODEV, opts.encode())
    if rc != 0:
        err = ctypes.get_errno()
        raise SandboxUnavailable(
            f"cannot mount the overlay workspace on {merged}: {os.strerror(err)} "
            "(the local sandbox needs root and overlayfs)"
        )


def _make_netns(path: str) -> int | None:
    """A network namespace holding only loopback (up), pinned by a bind mount on `path`;
    returns an open descriptor of it, or None when it cannot be made (then every command gets
    a fresh one from bubblewrap's --unshare-net, which costs ~8 ms more per command here).

    Made in a short-lived thread: unshare(CLONE_NEWNET) moves only the calling thread.
    """
    outcome: list[int | OSError] = []

    def make() -> None:
        try:
            if _libc.unshare(_CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                req = fcntl.ioctl(s, _SIOCGIFFLAGS, struct.pack(_IFREQ, b"lo", 0))
                flags = struct.unpack(_IFREQ, req)[1]
                fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))
            Path(path).touch()
            own = f"/proc/self/task/{threading.get_native_id()}/ns/net"
            if _libc.mount(own.encode(), path.encode(), None, _MS_BIND, None) != 0:
                raise OSError(ctypes.get_errno(), f"bind mount of the network namespace on {path}")
            outcome.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as e:
            outcome.append(e)

    t = threading.Thread(target=make, name="ise-es-netns")
    t.start()
    t.join()
    if isinstance(outcome[0], OSError):
        log.warning("no per-sandbox network namespace (%s); using one per command", outcome[0])
        if os.path.ismount(path):
            _libc.umount2(path.encode(), _MNT_DETACH)
        return None
    return outcome[0]


def _cleanup(
    state: str, merged: str, cgroup: str | None, *, mounted: bool, netns_fd: int | None = None
) -> None:
    if cgroup is not None:
        remove_cgroup(cgroup)
    if netns_fd is not None:
        os.close(netns_fd)
    netns = os.path.join(state, "netns")
    if os.path.ismount(netns):
        _libc.umount2(netns.encode(), _MNT_DETACH)
    if mounted and _libc.umount2(merged.encode(), 0) != 0:
        # Still busy (an interactive process the caller did not end): detach it instead.
        _libc.umount2(merged.encode(), _MNT_DETACH)
    if mounted and os.path.ismount(merged):
        log.warning("%s is still mounted; leaving %s in place", merged, state)
        return
    shutil.rmtree(state, ignore_errors=True)


_reaped: set[str] = set()


def _reap_stale_once(state_root: str | None) -> None:
    """Free the mounts, cgroups and directories of sandboxes whose process died without
    closing them (killed, crashed). Once per process and state directory."""
    root = state_root or tempfile.gettempdir()
    if root in _reaped:
        return
    _reaped.add(root)
    try:
        entries = [e for e in os.scandir(root) if e.name.startswith(_STATE_PREFIX)]
    except OSError:
        return
    cg_root = pids_root()
    for e in entries:
        try:
            token = Path(e.path, "owner").read_text()
        except OSError:
            continue  # not ours, or being created right now
        if owner_alive(token):
            continue
        log.warning("freeing sandbox %s left behind by dead process %s", e.path, token)
        cgroup = os.path.join(cg_root, e.name) if cg_root else None
        _cleanup(
            e.path,
            os.path.join(e.path, "merged"),
            cgroup if cgroup and os.path.isdir(cgroup) else None,
            mounted=os.path.ismount(os.path.join(e.path, "merged")),
        )
