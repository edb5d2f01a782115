"""The Docker engine and images for the `docker` sandbox backend.

No registry is reachable here, so images are built locally: `build_base_image` makes a Debian
bookworm root filesystem with debootstrap (from the mirror the host's apt uses) and imports it as
`ise-es-sandbox:bookworm`; `template_image` adds a directory template on top as one more layer
(cached by the template's digest), so each container starts from image layers in O(1).
`ensure_dockerd` starts `dockerd --bridge=none` when no engine answers.
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ise_es.errors import SandboxUnavailable
from ise_es.sandbox.templates import Template

__all__ = [
    "BASE_IMAGE",
    "BASE_PACKAGES",
    "SANDBOX_UID",
    "WORKSPACE",
    "build_base_image",
    "docker_client",
    "ensure_dockerd",
    "template_image",
]

log = logging.getLogger(__name__)

BASE_IMAGE = "ise-es-sandbox:bookworm"
WORKSPACE = "/tmp/workspace"
SANDBOX_UID = 1000
BASE_PACKAGES = (
    "python3",
    "git",
    "ca-certificates",
    "bash",
    "coreutils",
    "procps",
    "cron",  # crontab(1): installs and checks crontab files
    "python3-croniter",  # cron expression parsing and next-run computation
    "patch",
    "jq",
    "sqlite3",
    "unzip",
    "zip",
    "less",
    "file",
)
_SOCKET = "/var/run/docker.sock"


def docker_client(timeout: int = 120) -> Any:
    """A docker SDK client for the local engine, or SandboxUnavailable."""
    try:
        import docker
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise SandboxUnavailable("the docker Python package is missing (pip install docker)") from e
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception as e:
        raise SandboxUnavailable(
            f"no Docker engine answers ({e}); start one with `dockerd --bridge=none &` "
            "or call ise_es.sandbox.dockerimage.ensure_dockerd()"
        ) from e


def ensure_dockerd(*, wait_s: float = 60.0, log_path: str | None = None) -> Any:
    """Return a client to a running engine, starting `dockerd --bridge=none` if none answers.

    The daemon is left running in the background (it outlives this process on purpose: image
    builds are cached in it).

    Raises:
        SandboxUnavailable: dockerd is not installed or does not come up within `wait_s`.
    """
    try:
        return docker_client()
    except SandboxUnavailable:
        pass
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise SandboxUnavailable("dockerd not found: apt-get install -y docker.io")
    log_path = log_path or os.path.join(tempfile.gettempdir(), "ise-es-dockerd.log")
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [dockerd, "--bridge=none"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    deadline = time.monotonic() + wait_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None and not os.path.exists(_SOCKET):
            break
        if os.path.exists(_SOCKET):
            try:
                return docker_client()
            except SandboxUnavailable as e:
                last = e
        time.sleep(0.2)
    raise SandboxUnavailable(
        f"dockerd did not come up within {wait_s:.0f} s (exit {proc.poll()}; see {log_path}): "
        f"{last}"
    )


def image_exists(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def host_debian_mirror(sources_dir: str = "/etc/apt") -> str | None:
    """The first Debian archive URI the host's apt is configured with."""
    paths = [Path(sources_dir, "sources.list")]
    d = Path(sources_dir, "sources.list.d")
    if d.is_dir():
        paths += sorted(d.iterdir())
    for p in paths:
        try:
            text = p.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", text, re.M):
            uri = m.group(1).rstrip("/")
            if uri.endswith("/debian"):
                return uri
    return None


def build_base_image(
    client: Any,
    *,
    tag: str = BASE_IMAGE,
    mirror: str | None = None,
    force: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> str:
    """Build the Debian bookworm sandbox image unless it exists; return its id.

    Raises:
        SandboxUnavailable: debootstrap is missing or fails, or no mirror is known.
    """
    if not force and image_exists(client, tag):
        progress(f"{tag} exists; not rebuilding (use --force to rebuild)")
        return str(client.images.get(tag).id)
    debootstrap = shutil.which("debootstrap")
    if debootstrap is None:
        raise SandboxUnavailable("debootstrap not found: apt-get install -y debootstrap")
    mirror = mirror or host_debian_mirror()
    if mirror is None:
        raise SandboxUnavailable("no Debian mirror in the host's apt sources; pass --mirror URL")
    work = tempfile.mkdtemp(prefix="ise-es-rootfs-", dir="/var/tmp")
    rootfs = os.path.join(work, "rootfs")
    try:
        progress(f"debootstrap bookworm from {mirror} (about a minute)")
        _debootstrap(debootstrap, rootfs, mirror)
        progress(f"importing the root filesystem as {tag}")
        progress(_import_rootfs(client, rootfs, tag))
        return str(client.images.get(tag).id)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _debootstrap(debootstrap: str, rootfs: str, mirror: str) -> None:
    """A minimal bookworm with BASE_PACKAGES and the sandbox user in `rootfs`, apt's caches
    left out."""
    cmd = [
        debootstrap,
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        "bookworm",
        rootfs,
        mirror,
    ]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        tail = (run.stdout + run.stderr).strip().splitlines()[-5:]
        raise SandboxUnavailable(f"debootstrap failed ({run.returncode}): {' | '.join(tail)}")
    _add_sandbox_user(rootfs)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(os.path.join(rootfs, junk), ignore_errors=True)


def _import_rootfs(client: Any, rootfs: str, tag: str) -> str:
    """Import `rootfs` as image `tag` (user, workdir, environment of the sandbox); returns the
    engine's answer."""
    changes = [
        f"USER {SANDBOX_UID}:{SANDBOX_UID}",
        f"WORKDIR {WORKSPACE}",
        f"ENV HOME={WORKSPACE} LANG=C.UTF-8 "
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        'CMD ["sleep", "infinity"]',
    ]
    repo, _, version = tag.rpartition(":")
    tar = subprocess.Popen(
        ["tar", "--numeric-owner", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE
    )
    assert tar.stdout is not None
    try:
        out = client.api.import_image_from_stream(
            _chunks(tar.stdout), repository=repo, tag=version, changes=changes
        )
    finally:
        tar.stdout.close()
        tar.wait()
    if tar.returncode != 0:
        raise SandboxUnavailable(f"tar of the root filesystem failed ({tar.returncode})")
    return str(out).strip()


def _chunks(f: io.BufferedReader | Any) -> Iterator[bytes]:
    while chunk := f.read(1 << 20):
        yield chunk


def _add_sandbox_user(rootfs: str) -> None:
    u = SANDBOX_UID
    etc = Path(rootfs, "etc")
    with open(etc / "passwd", "a") as f:
        f.write(f"sandbox:x:{u}:{u}:sandbox:{WORKSPACE}:/bin/bash\n")
    with open(etc / "group", "a") as f:
        f.write(f"sandbox:x:{u}:\n")
    shadow = etc / "shadow"
    if shadow.exists():
        with open(shadow, "a") as f:
            f.write("sandbox:!:19000:0:99999:7:::\n")
    ws = Path(rootfs, WORKSPACE.lstrip("/"))
    ws.mkdir(parents=True, exist_ok=True)
    os.chown(ws, u, u)
    os.chmod(ws, 0o755)


def template_image(client: Any, template: Template, *, base: str = BASE_IMAGE) -> str:
    """The image of `base` plus the template's files in the workspace, built once per digest.

    The template becomes one more image layer (files owned by the sandbox user), so starting a
    container costs the same whatever the template's size; the build itself happens once.
    """
    if template.kind == "image":
        assert template.image is not None
        return template.image
    assert template.path is not None
    if not image_exists(client, base):
        raise SandboxUnavailable(f"image {base} is missing: run `ise-es sandbox build-image`")
    base_id = str(client.images.get(base).id)
    tag = f"ise-es-ws:{template.digest.removeprefix('sha256:')[:32]}"
    if image_exists(client, tag):
        img = client.images.get(tag)
        if img.labels.get("ise-es.base") == base_id:
            return tag
    # On disk, not in memory: a template may be large.
    with tempfile.TemporaryFile() as context:
        _write_context(context, template, base, base_id)
        context.seek(0)
        try:
            client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, pull=False)
        except Exception as e:
            raise SandboxUnavailable(
                f"cannot build the image of template {template.name!r}: {e}"
            ) from e
    return tag


def _write_context(context: Any, template: Template, base: str, base_id: str) -> None:
    assert template.path is not None
    with tarfile.open(fileobj=context, mode="w") as tar:
        dockerfile = (
            f"FROM {base}\n"
            f"COPY --chown={SANDBOX_UID}:{SANDBOX_UID} ws/ {WORKSPACE}/\n"
            f'LABEL ise-es.template-digest="{template.digest}" ise-es.base="{base_id}"\n'
        ).encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(template.path, arcname="ws", recursive=True)
