"""Exports that are a folder of files (`hf-dataset`, `atif`): built aside, swapped in whole.

A folder export is written into a temporary sibling (`.NAME.tmp-PID`) and renamed onto the
target only when every file in it is complete, like every single-file export. When the target
already exists it is first renamed aside and removed after the swap, so a reader sees the old
folder or the new one, never a mix (between the two renames the name is briefly absent).

A folder we did not write is never replaced: an existing, non-empty target must hold our
`manifest.json`, otherwise the export refuses and names the folder. The manifest lists every
file with its sha256, so a rerun can tell whether the folder is still as it was left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from ise_es.errors import ConfigError
from ise_es.store.base import EventStore

__all__ = [
    "MANIFEST",
    "current_manifest",
    "file_entry",
    "file_sha256",
    "ise_es_version",
    "load_folder_manifest",
    "staged_folder",
    "unchanged_files",
]

MANIFEST = "manifest.json"


def ise_es_version() -> str:
    try:
        return metadata.version("ise-es")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0+unknown"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_folder_manifest(target: Path) -> dict[str, Any] | None:
    """The manifest of a folder we wrote, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def unchanged_files(target: Path, manifest: dict[str, Any]) -> bool:
    """Every file the manifest lists is present with its recorded sha256, and nothing else
    (apart from the manifest itself) is in the folder."""
    files = manifest.get("files")
    if not isinstance(files, list):
        return False
    listed = set()
    for entry in files:
        path = target / str(entry.get("path", ""))
        listed.add(path.relative_to(target).as_posix())
        try:
            if file_sha256(path) != entry.get("sha256"):
                return False
        except OSError:
            return False
    present = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()} - {
        MANIFEST
    }
    return present == listed


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    """A manifest's line for the file `name` of `folder`: its path, size and sha256."""
    path = folder / name
    return {"path": name, "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def current_manifest(
    store: EventStore, target: Path, digest: str, types: tuple[str, ...]
) -> dict[str, Any] | None:
    """The manifest of `target` when writing it again would change nothing: written with the
    options of `digest`, every file as it lists, and no event of `types` (what the export
    reads to decide) appended since its store position. None otherwise."""
    manifest = load_folder_manifest(target)
    if manifest is None or manifest.get("options_digest") != digest:
        return None
    position = manifest.get("store", {}).get("position")
    if not isinstance(position, int) or not unchanged_files(target, manifest):
        return None
    if store.read_all(position, 1, types=types):
        return None
    return manifest


def _check_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{target} exists and is not a folder: choose another -o")
    if not target.parent.is_dir():
        raise ConfigError(f"folder {target.parent} does not exist: create it first")
    if target.is_dir() and any(target.iterdir()) and not (target / MANIFEST).is_file():
        raise ConfigError(
            f"{target} is not empty and was not written by ise-es (no {MANIFEST}): "
            "choose a new folder, or empty it first"
        )


@contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; on a clean exit it replaces `target`.

    Raises:
        ConfigError: `target` is not a folder we may replace, or its parent does not exist.
    """
    _check_target(target)
    stage = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    aside = target.with_name(f".{target.name}.old-{os.getpid()}")
    for leftover in (stage, aside):
        if leftover.exists():
            shutil.rmtree(leftover)
    stage.mkdir()
    try:
        yield stage
        _check_target(target)  # again, just before the swap
        if target.exists():
            os.replace(target, aside)
        os.replace(stage, target)
        if aside.exists():
            shutil.rmtree(aside)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
