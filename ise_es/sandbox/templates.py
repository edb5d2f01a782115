"""Workspace templates: a directory (or a Docker image) that every new sandbox starts from.

A directory template is identified by a content digest: sha256 over its sorted relative paths,
file types, permission bits, symlink targets and file contents (owners and times are left out:
they differ between checkouts of the same files). Sessions record the digest; a replay passes it
back as `expected_digest`, and a template whose files no longer match is refused.

Opening a sandbox must cost O(1) in the template's size, so the digest is computed once per
process per template (`load_template` memoises it) and per-file hashes are cached on disk keyed
by (path, size, mtime_ns, ctime_ns, inode): a fresh process re-stats the tree but only re-reads
files that changed. The per-file manifest is kept, because the filesystem diff needs the
template's version of a path to tell "modified" from "mode changed" or "touched, unchanged".
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from ise_es.errors import TemplateError

__all__ = [
    "EMPTY_TEMPLATE",
    "Template",
    "TemplateEntry",
    "default_cache_dir",
    "default_templates_dir",
    "file_sha256",
    "load_template",
]

EMPTY_TEMPLATE = "empty"
"""Built in: an empty workspace (git cannot ship an empty directory)."""

IMAGE_PREFIX = "image:"
"""`image:NAME` names a Docker image used as the whole root filesystem (docker backend only)."""

EntryKind = Literal["file", "dir", "symlink"]


class TemplateEntry(msgspec.Struct, frozen=True, array_like=True):
    """One path of a template as the digest saw it."""

    kind: EntryKind
    mode: int
    """Permission bits (0o7777)."""
    size: int = 0
    digest: str | None = None
    """sha256 of a regular file's content."""
    link_target: str | None = None


class Template(msgspec.Struct, frozen=True, kw_only=True):
    """A resolved template: where it is and what it contains."""

    name: str
    """As the caller named it (`pyproject`, a path, `image:ise-es-sandbox:bookworm`)."""
    kind: Literal["dir", "image"]
    path: str | None
    """Absolute directory of a `dir` template."""
    image: str | None = None
    digest: str
    """`sha256:<hex>` content digest (dir) or the image id (image)."""
    manifest: Mapping[str, TemplateEntry] = {}
    """Relative '/'-separated path -> entry, for `dir` templates."""


class _CachedHash(msgspec.Struct, frozen=True, array_like=True):
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    sha256: str


def default_templates_dir() -> Path:
    """`fixtures/templates` of the checkout this package lives in."""
    return Path(__file__).resolve().parents[2] / "fixtures" / "templates"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ise-es"


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


_memo: dict[str, Template] = {}
_memo_lock = threading.Lock()


def load_template(
    spec: str,
    *,
    expected_digest: str | None = None,
    templates_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> Template:
    """Resolve a template by name (a folder of `templates_dir`), path, `empty` or `image:NAME`.

    Raises:
        TemplateError: unknown template, or its content does not match `expected_digest`.
    """
    if spec.startswith(IMAGE_PREFIX):
        image = spec[len(IMAGE_PREFIX) :]
        if not image:
            raise TemplateError(f"template {spec!r}: no image name after {IMAGE_PREFIX!r}")
        # The image id is resolved by the docker backend, which talks to the engine.
        return Template(name=spec, kind="image", path=None, image=image, digest="")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = _resolve_dir(spec, templates_dir, cache)
    key = str(path)
    with _memo_lock:
        tpl = None if refresh else _memo.get(key)
    if tpl is None:
        manifest = _scan(path, cache)
        tpl = Template(
            name=spec, kind="dir", path=key, digest=digest_of(manifest), manifest=manifest
        )
        with _memo_lock:
            _memo[key] = tpl
    elif tpl.name != spec:
        tpl = msgspec.structs.replace(tpl, name=spec)
    if expected_digest is not None and tpl.digest != expected_digest:
        raise TemplateError(
            f"template {spec!r} ({key}) has digest {tpl.digest}, expected {expected_digest}: "
            "its files changed since the session was recorded; restore them or re-record"
        )
    return tpl


def _resolve_dir(spec: str, templates_dir: str | os.PathLike[str] | None, cache: Path) -> Path:
    root = Path(templates_dir) if templates_dir is not None else default_templates_dir()
    candidates = [Path(spec)] if ("/" in spec or spec.startswith(".")) else [root / spec]
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    if spec == EMPTY_TEMPLATE:
        empty = cache / "empty-template"
        empty.mkdir(parents=True, exist_ok=True)
        if any(empty.iterdir()):
            raise TemplateError(f"template 'empty': {empty} is not empty; remove its contents")
        return empty.resolve()
    known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    raise TemplateError(
        f"unknown template {spec!r}: no directory {candidates[0]} "
        f"(known in {root}: {', '.join([EMPTY_TEMPLATE, *known])})"
    )


def digest_of(manifest: Mapping[str, TemplateEntry]) -> str:
    h = hashlib.sha256()
    for rel in sorted(manifest):
        e = manifest[rel]
        body = e.digest if e.kind == "file" else (e.link_target or "")
        h.update(f"{e.kind}\0{e.mode:o}\0{rel}\0{body}\n".encode("utf-8", "surrogateescape"))
    return "sha256:" + h.hexdigest()


def _scan(root: Path, cache_dir: Path) -> dict[str, TemplateEntry]:
    """Walk the template, hashing only files whose stat changed since the cached hash."""
    cache_file = cache_dir / "template-hashes" / (hashlib.sha256(bytes(root)).hexdigest()[:24])
    old: dict[str, _CachedHash] = {}
    # No cache yet, or a damaged one: rehash everything.
    with contextlib.suppress(OSError, msgspec.DecodeError):
        old = msgspec.msgpack.decode(cache_file.read_bytes(), type=dict[str, _CachedHash])
    new: dict[str, _CachedHash] = {}
    manifest: dict[str, TemplateEntry] = {}
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                st = de.stat(follow_symlinks=False)
                perm = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    manifest[rel] = TemplateEntry("dir", perm)
                    stack.append(rel)
                elif stat.S_ISLNK(st.st_mode):
                    manifest[rel] = TemplateEntry("symlink", perm, link_target=os.readlink(de.path))
                elif stat.S_ISREG(st.st_mode):
                    c = old.get(rel)
                    stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                    if c is None or (c.size, c.mtime_ns, c.ctime_ns, c.ino) != stamp:
                        c = _CachedHash(*stamp, sha256=file_sha256(de.path))
                    new[rel] = c
                    manifest[rel] = TemplateEntry("file", perm, st.st_size, c.sha256)
                else:
                    raise TemplateError(
                        f"template {root}: {rel} is not a file, directory or symlink"
                    )
    if new != old:
        _write_atomic(cache_file, msgspec.msgpack.encode(new))
    return manifest


def _write_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache that cannot be written only costs speed next time
