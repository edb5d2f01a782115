"""Filesystem diffs whose cost follows the number of changes, not the workspace size.

Both backends keep the workspace as a template (read-only, described by its manifest) plus a
writable layer that holds exactly what changed: the overlayfs upper directory for `local`, the
container's change list for `docker`. A backend turns its layer into an `UpperMap` (relative
path -> `PathState`, deletions as `whiteout`); `ChangeTracker` remembers the map at each
`snapshot()` and compares the effective state of every touched path between two maps, falling
back to the template's manifest for paths the layer does not hold.

Regular files are hashed once per (size, mtime_ns, ctime_ns, inode) and the digests cached, so a
snapshot after a diff hashes nothing new. A file rewritten with the same content and mode
("touched") is not a change.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import msgspec

from ise_es.errors import SandboxError
from ise_es.events import FileChange
from ise_es.sandbox.capture import BlobSink
from ise_es.sandbox.templates import TemplateEntry

__all__ = ["ChangeTracker", "PathState", "UpperMap", "scan_overlay_upper", "state_from_stat"]

StateKind = Literal["file", "dir", "symlink", "whiteout", "other"]


class PathState(msgspec.Struct, frozen=True, kw_only=True):
    kind: StateKind
    mode: int = 0
    size: int = 0
    stamp: tuple[int, int, int] = (0, 0, 0)
    """(mtime_ns, ctime_ns, inode): with size, the key under which a file's digest is cached."""
    link_target: str | None = None
    opaque: bool = False
    """A directory that hides everything the template has below it (deleted, then re-created)."""
    digest: str | None = None


UpperMap = dict[str, PathState]

_OPAQUE_XATTR = "trusted.overlay.opaque"
_MAX_SNAPSHOTS = 64


def state_from_stat(path: str, st: os.stat_result) -> PathState:
    m = st.st_mode
    stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    if stat.S_ISREG(m):
        return PathState(kind="file", mode=stat.S_IMODE(m), size=st.st_size, stamp=stamp)
    if stat.S_ISDIR(m):
        return PathState(kind="dir", mode=stat.S_IMODE(m), stamp=stamp)
    if stat.S_ISLNK(m):
        return PathState(kind="symlink", mode=0o777, link_target=os.readlink(path), stamp=stamp)
    return PathState(kind="other", mode=stat.S_IMODE(m), stamp=stamp)


def scan_overlay_upper(upper: str) -> UpperMap:
    """Every entry of an overlayfs upper directory (whiteouts are 0/0 character devices).

    Assumes the overlay was mounted with redirect_dir and metacopy off (every changed entry is
    whole in the upper directory). A missing `upper` is an empty layer.
    """
    out: UpperMap = {}
    if not os.path.isdir(upper):
        return out
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(upper, rel_dir) if rel_dir else upper) as it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                st = de.stat(follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    out[rel] = PathState(kind="whiteout")
                    continue
                s = state_from_stat(de.path, st)
                if s.kind == "dir":
                    stack.append(rel)
                    if _is_opaque(de.path):
                        s = msgspec.structs.replace(s, opaque=True)
                out[rel] = s
    return out


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _ancestors(rel: str) -> Iterable[str]:
    i = rel.find("/")
    while i != -1:
        yield rel[:i]
        i = rel.find("/", i + 1)


class ChangeTracker:
    """Snapshots and diffs over an upper layer plus a template manifest.

    Args:
        manifest: the template's entries (the lower layer).
        scan: returns the current upper map.
        host_path: where the host can read a path's current content (for hashing and blobs).
        blobs: where new file contents go (None: digests only).
        blob_cap: files larger than this are recorded by digest and size only.
    """

    def __init__(
        self,
        manifest: Mapping[str, TemplateEntry],
        scan: Callable[[], UpperMap],
        host_path: Callable[[str], str],
        blobs: BlobSink | None,
        blob_cap: int,
    ) -> None:
        self._manifest = manifest
        self._scan = scan
        self._host_path = host_path
        self._blobs = blobs
        self._blob_cap = blob_cap
        self._digests: dict[tuple[str, int, tuple[int, int, int]], str] = {}
        self._snapshots: dict[str, UpperMap] = {}
        self._ids = itertools.count(1)

    def snapshot(self) -> str:
        umap = self._with_digests(self._scan())
        token = f"snap-{next(self._ids)}"
        self._snapshots[token] = umap
        while len(self._snapshots) > _MAX_SNAPSHOTS:
            del self._snapshots[next(iter(self._snapshots))]
        return token

    def diff(self, token: str) -> list[FileChange]:
        old = self._snapshots.get(token)
        if old is None:
            raise SandboxError(f"unknown or expired snapshot {token!r}")
        new = self._scan()
        candidates: set[str] = set()
        for path in old.keys() | new.keys():
            a, b = old.get(path), new.get(path)
            if a is None or b is None or _differs(a, b):
                candidates.add(path)
        # A directory that starts (or stops) hiding the template's subtree changes every path
        # below it, including ones the upper layer never mentions.
        for path in list(candidates):
            if self._hides(old.get(path)) != self._hides(new.get(path)):
                prefix = path + "/"
                candidates.update(p for p in self._manifest if p.startswith(prefix))
        changes = []
        for path in sorted(candidates):
            change = self._classify(path, self._effective(path, old), self._effective(path, new))
            if change is not None:
                changes.append(change)
        return changes

    @staticmethod
    def _hides(s: PathState | None) -> bool:
        return s is not None and (s.kind != "dir" or s.opaque)

    def _effective(self, path: str, umap: UpperMap) -> PathState | TemplateEntry | None:
        s = umap.get(path)
        if s is not None:
            return None if s.kind == "whiteout" else s
        for anc in _ancestors(path):
            if self._hides(umap.get(anc)):
                return None
        return self._manifest.get(path)

    def _classify(
        self,
        path: str,
        old: PathState | TemplateEntry | None,
        new: PathState | TemplateEntry | None,
    ) -> FileChange | None:
        if new is None:
            return None if old is None else FileChange(path=path, kind="deleted")
        if new.kind == "symlink":
            if old is None or old.kind != "symlink" or old.link_target != new.link_target:
                return FileChange(path=path, kind="symlink", link_target=new.link_target)
            return None
        if old is None or old.kind != new.kind:
            kind: Literal["added", "modified"] = "added" if old is None else "modified"
            return self._describe(path, new, kind)
        if new.kind == "file" and self._digest_of(path, old) != self._digest_of(path, new):
            return self._describe(path, new, "modified")
        if old.mode != new.mode:
            return FileChange(path=path, kind="mode", mode=new.mode, size=new.size or None)
        return None

    def _describe(
        self, path: str, s: PathState | TemplateEntry, kind: Literal["added", "modified"]
    ) -> FileChange:
        if s.kind != "file":
            return FileChange(path=path, kind=kind, mode=s.mode)
        digest, stored = self._store(path, s)
        return FileChange(
            path=path, kind=kind, mode=s.mode, size=s.size, digest=digest, stored=stored
        )

    def _store(self, path: str, s: PathState | TemplateEntry) -> tuple[str | None, bool]:
        if self._blobs is None or s.size > self._blob_cap or not isinstance(s, PathState):
            return self._digest_of(path, s), False
        try:
            with open(self._host_path(path), "rb") as f:
                data = f.read()
        except OSError:
            return self._digest_of(path, s), False
        digest = self._blobs.put_blob(data)
        self._digests[(path, s.size, s.stamp)] = digest
        return digest, True

    def _digest_of(self, path: str, s: PathState | TemplateEntry) -> str | None:
        if isinstance(s, TemplateEntry) or s.digest is not None:
            return s.digest
        key = (path, s.size, s.stamp)
        d = self._digests.get(key)
        if d is None:
            h = hashlib.sha256()
            try:
                with open(self._host_path(path), "rb", buffering=0) as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
            except OSError:
                return None  # vanished while we looked: the next diff will see it
            d = self._digests[key] = h.hexdigest()
        return d

    def _with_digests(self, umap: UpperMap) -> UpperMap:
        """Fill in file digests so a later diff can compare contents that have since changed."""
        out = {}
        for path, s in umap.items():
            if s.kind == "file":
                s = msgspec.structs.replace(s, digest=self._digest_of(path, s))
            out[path] = s
        return out


def _differs(a: PathState, b: PathState) -> bool:
    return (a.kind, a.mode, a.size, a.stamp, a.link_target, a.opaque) != (
        b.kind,
        b.mode,
        b.size,
        b.stamp,
        b.link_target,
        b.opaque,
    )
