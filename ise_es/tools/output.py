"""Turning a command's output, as it arrives, into OutputChunk events and the agent's text.

`OutputRecorder.feed(stream, data)` is called with each piece of output in arrival order. It
emits `OutputChunk` events at once (at most 64 KiB each, `seq` shared by both streams so the
interleaving is kept, none past the per-stream head limit) and keeps a bounded head and tail of
the combined output for the text the agent sees. With `capture=True` it also hashes each stream
and spools it for the blob store, for output that did not come through `Sandbox.exec` (which
does that itself).
"""

from __future__ import annotations

import hashlib
import tempfile
from typing import IO

from ise_es.events import ChunkStream, OutputChunk
from ise_es.sandbox.capture import BlobSink
from ise_es.tools.base import Emit

__all__ = ["CHUNK_BYTES", "OutputRecorder", "StreamDigest"]

CHUNK_BYTES = 64 * 1024


class StreamDigest:
    """sha256, size and a spooled copy (up to a cap) of one stream."""

    def __init__(self, cap: int) -> None:
        self._sha = hashlib.sha256()
        self.size = 0
        self._cap = cap
        # Closed by finish() or discard(): it lives across many feeds, not one block.
        self._spool: IO[bytes] | None = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=1 << 20
        )

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        self._sha.update(data)
        if self._spool is not None:
            if self.size > self._cap:
                self._spool.close()
                self._spool = None
            else:
                self._spool.write(data)

    def discard(self) -> None:
        spool, self._spool = self._spool, None
        if spool is not None:
            spool.close()

    def finish(self, blobs: BlobSink) -> str | None:
        """Store the stream (when within the cap) and return its digest (None when empty)."""
        spool, self._spool = self._spool, None
        if self.size == 0:
            if spool is not None:
                spool.close()
            return None
        if spool is not None:
            with spool:
                spool.seek(0)
                blobs.put_blob(spool.read())
        return self._sha.hexdigest()


class OutputRecorder:
    def __init__(
        self,
        call_id: str,
        emit: Emit,
        *,
        head_limit: int,
        text_head: int,
        text_tail: int,
        capture_cap: int | None = None,
    ) -> None:
        self._call_id = call_id
        self._emit = emit
        self._head_limit = head_limit
        self._emitted = {"stdout": 0, "stderr": 0}
        self.seq = 0
        self.dropped_chunks = False
        self._text_head_cap = text_head
        self._text_tail_cap = text_tail
        self._text_head = bytearray()
        self._text_tail = bytearray()
        self.total = 0
        self.captures: dict[str, StreamDigest] | None = None
        if capture_cap is not None:
            self.captures = {
                "stdout": StreamDigest(capture_cap),
                "stderr": StreamDigest(capture_cap),
            }

    def feed(self, stream: ChunkStream, data: bytes) -> None:
        if not data:
            return
        if self.captures is not None:
            self.captures[stream].feed(data)
        self._keep_text(data)
        room = self._head_limit - self._emitted[stream]
        if room < len(data):
            self.dropped_chunks = True
        data = data[: max(room, 0)]
        for start in range(0, len(data), CHUNK_BYTES):
            piece = data[start : start + CHUNK_BYTES]
            self._emit(OutputChunk(call_id=self._call_id, stream=stream, seq=self.seq, data=piece))
            self.seq += 1
            self._emitted[stream] += len(piece)

    def _keep_text(self, data: bytes) -> None:
        self.total += len(data)
        room = self._text_head_cap - len(self._text_head)
        if room > 0:
            self._text_head += data[:room]
            data = data[room:]
        if data:
            self._text_tail += data
            if len(self._text_tail) > 2 * self._text_tail_cap:
                del self._text_tail[: len(self._text_tail) - self._text_tail_cap]

    def text(self) -> str:
        """The combined output as the agent sees it: all of it, or head + note + tail."""
        tail = bytes(self._text_tail[-self._text_tail_cap :]) if self._text_tail_cap else b""
        head = bytes(self._text_head)
        omitted = self.total - len(head) - len(tail)
        if omitted <= 0:
            return (head + tail).decode("utf-8", errors="replace")
        return (
            head.decode("utf-8", errors="replace")
            + f"\n\n[... {omitted} bytes of output omitted ...]\n\n"
            + tail.decode("utf-8", errors="replace")
        )
