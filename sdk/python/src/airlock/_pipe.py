"""Bytes handed from one thread to another through a bounded queue, read as a file: how
the async client feeds a download to the tar extractor running in a worker thread."""

from __future__ import annotations

import queue
from typing import Callable

#: Chunks in flight between the network and the extractor.
DEPTH = 8
#: How often a blocked side checks whether the other has given up.
TICK = 0.1


class _Buffered:
    """A file's `read` over chunks that `next_chunk` hands out (b"" at the end)."""

    def __init__(self, next_chunk: Callable[[], bytes]) -> None:
        self._next = next_chunk
        self._pending = b""
        self._ended = False

    def read(self, size: int | None = -1) -> bytes:
        want = size if size is not None and size >= 0 else None
        while not self._ended and (want is None or len(self._pending) < want):
            chunk = self._next()
            if not chunk:
                self._ended = True
                break
            self._pending += chunk
        if want is None:
            out, self._pending = self._pending, b""
        else:
            out, self._pending = self._pending[:want], self._pending[want:]
        return out


class Pipe(_Buffered):
    """A writer puts chunks (b"" ends the stream, `break_off` fails it); a reader reads
    them as a file."""

    def __init__(self) -> None:
        # None in the queue: the stream broke off.
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=DEPTH)
        super().__init__(self._next_chunk)
        self.abandoned = False

    def _next_chunk(self) -> bytes:
        chunk = self._chunks.get()
        if chunk is None:
            # An error, not an end: a tar cut off between two entries reads like a whole
            # one, and the reader would take it for the whole archive.
            raise OSError("the download broke off")
        return chunk

    def put(self, chunk: bytes) -> None:
        """Blocks while the reader is behind; drops the chunk once it has gone."""
        self._put(chunk)

    def break_off(self) -> None:
        """The writer failed: the reader's next read past what it has raises."""
        self._put(None)

    def _put(self, chunk: bytes | None) -> None:
        while not self.abandoned:
            try:
                self._chunks.put(chunk, timeout=TICK)
                return
            except queue.Full:
                continue

    def abandon(self) -> None:
        """The reader is done (finished or failed): writers stop waiting."""
        self.abandoned = True


class IterReader(_Buffered):
    """An iterator of chunks read as a file."""

    def __init__(self, chunks: object) -> None:
        remaining = iter(chunks)  # type: ignore[call-overload]
        super().__init__(lambda: bytes(next(remaining, b"")))
