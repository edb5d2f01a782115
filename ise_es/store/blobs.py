"""Blob rows: content-addressed (sha256), compressed with zstd when that makes them smaller."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import zstandard

__all__ = ["BlobRow", "BlobRows", "blob_columns", "unpack"]

BlobRow = tuple[str, int, str, bytes]
"""(digest, size, codec, stored bytes)."""
_BLOB_RAW_BELOW = 128
"""Blobs smaller than this are not worth a compression frame."""


class BlobRows:
    """Makes blob rows, with one compressor per thread (a compressor is not thread-safe)."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._local = threading.local()

    def rows(self, blobs: Iterable[bytes]) -> list[BlobRow]:
        """Compressed rows, one per distinct digest."""
        rows: dict[str, BlobRow] = {}
        for data in blobs:
            digest = hashlib.sha256(data).hexdigest()
            if digest in rows:
                continue
            codec, stored = "raw", data
            if len(data) >= _BLOB_RAW_BELOW:
                compressor = getattr(self._local, "zc", None)
                if compressor is None:
                    compressor = self._local.zc = zstandard.ZstdCompressor(level=self._level)
                packed = compressor.compress(data)
                if len(packed) < len(data):
                    codec, stored = "zstd", packed
            rows[digest] = (digest, len(data), codec, stored)
        return list(rows.values())


def blob_columns(rows: Sequence[BlobRow]) -> tuple[list[Any], ...]:
    """Blob rows as the column arrays PostgreSQL unnests."""
    return tuple(list(column) for column in zip(*rows, strict=True)) or ([], [], [], [])


def unpack(codec: str, data: bytes) -> bytes:
    """A stored blob's original bytes."""
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompress(data)
    return data
