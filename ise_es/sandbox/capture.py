"""Capturing one output stream of a command with bounded memory.

The first `head` bytes and the last `head` bytes are kept in memory; the full stream is hashed
as it arrives and spooled to an anonymous temp file, then handed to the blob sink when the command
ends (if it is not larger than the cap). So a command printing 50 MB costs about 2 x head bytes
of memory while it runs, plus the blob put at the end.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from typing import IO, Protocol

from ise_es.sandbox.base import ExecResult

__all__ = ["BlobSink", "StreamCapture", "captured_result"]


class BlobSink(Protocol):
    """Somewhere to put content-addressed bytes: the event store in practice (any
    `ise_es.store.base.EventStore` is one). Sandboxes and tools write here; defined beside the
    sandbox, its first user, because the sandbox layer may not import the store (its peer)."""

    def put_blob(self, data: bytes) -> str:
        """Store bytes (deduplicated) and return their sha256 hex digest."""
        ...


_SPOOL_IN_MEMORY = 1 << 20


class StreamCapture:
    """Head + tail + digest + spooled full copy of one stream."""

    def __init__(self, head_bytes: int, blob_cap: int) -> None:
        self._head_cap = head_bytes
        self._blob_cap = blob_cap
        self._head = bytearray()
        self._tail = bytearray()
        self._sha = hashlib.sha256()
        self.size = 0
        self._spool: IO[bytes] | None = None
        if blob_cap > 0:
            # Closed in finish() (or when the cap is passed); not a with-block by design.
            self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        self._sha.update(data)
        if self._spool is not None:
            if self.size > self._blob_cap:
                self._spool.close()
                self._spool = None
            else:
                self._spool.write(data)
        room = self._head_cap - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            # Trim in batches so that a stream of tiny chunks stays linear.
            if len(self._tail) > 2 * self._head_cap:
                del self._tail[: len(self._tail) - self._head_cap]

    @property
    def truncated(self) -> bool:
        return self.size > len(self._head) + len(self._tail[-self._head_cap :])

    def kept(self) -> bytes:
        """Head, plus the tail when the stream was longer than the head."""
        return bytes(self._head) + bytes(self._tail[-self._head_cap :])

    def digest(self) -> str | None:
        return self._sha.hexdigest() if self.size else None

    def finish(self, blobs: BlobSink | None) -> bool:
        """Store the full stream as a blob when it fits the cap; True if stored."""
        spool, self._spool = self._spool, None
        if spool is None:
            return False
        try:
            if blobs is None or self.size == 0:
                return False
            spool.seek(0)
            blobs.put_blob(spool.read())
            return True
        finally:
            spool.close()


def captured_result(
    out: StreamCapture,
    err: StreamCapture,
    blobs: BlobSink | None,
    *,
    exit_code: int | None,
    signal: int | None,
    timed_out: bool,
    started: float,
) -> ExecResult:
    """The ExecResult of a finished command: both streams handed to the blob sink, then what
    was kept of them; the duration runs from `started` (time.monotonic()) to now."""
    duration_ms = (time.monotonic() - started) * 1000.0
    out.finish(blobs)
    err.finish(blobs)
    return ExecResult(
        exit_code=exit_code,
        signal=signal,
        timed_out=timed_out,
        duration_ms=round(duration_ms, 3),
        stdout=out.kept(),
        stderr=err.kept(),
        stdout_size=out.size,
        stderr_size=err.size,
        stdout_digest=out.digest(),
        stderr_digest=err.digest(),
        truncated=out.truncated or err.truncated,
    )
