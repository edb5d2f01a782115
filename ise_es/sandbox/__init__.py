"""Sandboxes: isolated workspaces restored from a template, where tool calls run for real.

    with open_sandbox("local", "pyproject", blobs=store) as sb:
        mark = sb.snapshot()
        result = sb.exec("python3 -m unittest", timeout=30, on_chunk=print)
        changes = sb.diff(mark)

Backends: `local` (bubblewrap over overlayfs, the default) and `docker`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ise_es.errors import ConfigError, TemplateError
from ise_es.sandbox.base import ChunkCallback, ExecResult, Limits, Sandbox, Snapshot
from ise_es.sandbox.capture import BlobSink
from ise_es.sandbox.templates import Template, load_template

__all__ = [
    "BACKENDS",
    "DEFAULT_ENVIRONMENT",
    "BlobSink",
    "ChunkCallback",
    "ExecResult",
    "Limits",
    "Sandbox",
    "Snapshot",
    "Template",
    "load_template",
    "open_sandbox",
    "pinned_environment",
]

BACKENDS = ("local", "docker")

DEFAULT_ENVIRONMENT: Mapping[str, str] = {
    "TZ": "UTC",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "SOURCE_DATE_EPOCH": "1704067200",
    "PYTHONHASHSEED": "0",
    "PYTHONDONTWRITEBYTECODE": "1",
}
"""Pinned for every command so that recording and replay see the same clock zone, locale and
build timestamp; `__pycache__` is off so that running Python does not show up in file diffs."""


def pinned_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The defaults with the caller's values (e.g. a recorded SOURCE_DATE_EPOCH) on top."""
    return {**DEFAULT_ENVIRONMENT, **(overrides or {})}


def open_sandbox(
    backend: str,
    template: str | Template,
    *,
    blobs: BlobSink | None,
    limits: Limits | None = None,
    environment: Mapping[str, str] | None = None,
    expected_digest: str | None = None,
    templates_dir: str | os.PathLike[str] | None = None,
    **backend_options: Any,
) -> Sandbox:
    """Start a sandbox of `backend` from `template` (a name, path or resolved `Template`).

    Args:
        blobs: where full outputs and new file contents go (the event store); None keeps
            digests only.
        environment: pinned variables over `DEFAULT_ENVIRONMENT`; record
            `sandbox.environment` and pass the same values when replaying.
        expected_digest: refuse a template whose content digest differs (replay).
        backend_options: `bwrap_path`, `state_root` (local); `image`, `client` (docker).

    Raises:
        ConfigError: unknown backend.
        TemplateError: unknown template or digest mismatch.
        SandboxUnavailable: the backend cannot start here.
    """
    limits = limits or Limits()
    env = pinned_environment(environment)
    if backend == "local":
        from ise_es.sandbox.bwrap import LocalSandbox

        tpl = _resolve(template, expected_digest, templates_dir)
        return LocalSandbox(tpl, blobs=blobs, limits=limits, environment=env, **backend_options)
    if backend == "docker":
        from ise_es.sandbox.docker import DockerSandbox

        tpl = _resolve(template, None, templates_dir)
        return DockerSandbox(
            tpl,
            blobs=blobs,
            limits=limits,
            environment=env,
            expected_digest=expected_digest,
            **backend_options,
        )
    raise ConfigError(f"unknown sandbox backend {backend!r} (choose from {', '.join(BACKENDS)})")


def _resolve(
    template: str | Template,
    expected_digest: str | None,
    templates_dir: str | os.PathLike[str] | None,
) -> Template:
    if isinstance(template, Template):
        if template.kind == "dir" and expected_digest not in (None, template.digest):
            raise TemplateError(
                f"template {template.name!r} has digest {template.digest}, "
                f"expected {expected_digest}"
            )
        return template
    return load_template(template, expected_digest=expected_digest, templates_dir=templates_dir)
