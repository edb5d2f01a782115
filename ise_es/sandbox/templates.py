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
import shutil
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
    "file_sha256",
    "load_template",
    "shipped_templates_dir",
    "template_search_path",
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


USER_TEMPLATES_DIR = Path("fixtures") / "templates"
"""Where a user's own templates are looked for when no directory is given: relative to the
current directory, so a project keeps its templates beside its scenarios."""


def shipped_templates_dir() -> Path:
    """The templates that ship inside the package (package data, also in a wheel install)."""
    return Path(__file__).resolve().parents[1] / "data" / "templates"


def template_search_path(templates_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Where a template name is looked up, first match wins: `templates_dir` (from
    `--templates-dir` or the config file) or else `./fixtures/templates`, then the shipped ones.
    """
    first = Path(templates_dir) if templates_dir is not None else Path.cwd() / USER_TEMPLATES_DIR
    dirs = [first.absolute()]
    shipped = shipped_templates_dir()
    if not (first.is_dir() and shipped.is_dir() and first.samefile(shipped)):
        dirs.append(shipped)
    return dirs


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
    """Resolve a template by name, path (with a `/` or a leading `.`), `empty` or `image:NAME`.

    Every command resolves names here, the same way: a folder of `templates_dir` (or of
    `./fixtures/templates` when none is given), else a shipped template
    (`template_search_path`).

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
    if "/" in spec or spec.startswith("."):
        if Path(spec).is_dir():
            return Path(spec).resolve()
        raise TemplateError(f"template {spec!r}: no directory {Path(spec).absolute()}")
    search = template_search_path(templates_dir)
    for root in search:
        if (root / spec).is_dir():
            found = (root / spec).resolve()
            return _without_pycache(found, cache) if root == search[-1] else found
    if spec == EMPTY_TEMPLATE:
        empty = cache / "empty-template"
        empty.mkdir(parents=True, exist_ok=True)
        if any(empty.iterdir()):
            raise TemplateError(f"template 'empty': {empty} is not empty; remove its contents")
        return empty.resolve()
    known = sorted(
        {p.name for root in search if root.is_dir() for p in root.iterdir() if p.is_dir()}
    )
    raise TemplateError(
        f"unknown template {spec!r}: no directory of that name in "
        f"{' or '.join(str(root) for root in search)} "
        f"(known: {', '.join([EMPTY_TEMPLATE, *known])}; --templates-dir DIR adds a directory)"
    )


_clean_memo: dict[Path, Path] = {}


def _without_pycache(path: Path, cache: Path) -> Path:
    """A shipped template as checked in, even when pip installed it.

    pip byte-compiles every .py file it installs, so a shipped template in a wheel install holds
    `__pycache__` directories that the checked-in one does not: its digest would differ and
    the agent would see files the template never had. Sandboxes then start from a copy without
    them, made once in the cache and named by the stat of every other entry (so an edited or
    reinstalled template gets a fresh copy): a session recorded from a wheel install has the
    digest of one recorded from a checkout.
    """
    with _memo_lock:
        known = _clean_memo.get(path)
    if known is not None:
        return known
    stamp = hashlib.sha256(str(path).encode())
    compiled = False
    for top, dirs, files in os.walk(path):
        compiled = compiled or "__pycache__" in dirs
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted([*dirs, *files]):
            st = os.lstat(os.path.join(top, name))
            stamp.update(f"{top}/{name}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    clean = path
    if compiled:
        clean = cache / "shipped-templates" / f"{path.name}-{stamp.hexdigest()[:16]}"
        if not clean.is_dir():
            clean.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=clean.parent, prefix=".tmp-"))
            copy = tmp / path.name
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(path, copy, symlinks=True, ignore=ignore)
            with contextlib.suppress(OSError):  # another process made it first: use theirs
                os.rename(copy, clean)
            shutil.rmtree(tmp, ignore_errors=True)
        clean = clean.resolve()
    with _memo_lock:
        _clean_memo[path] = clean
    return clean


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
