"""The async client's I/O helpers: request bodies as async byte streams, local file
reads and writes off the event loop, and sleeping. Hand-written (the sync twin is
`_sync/_io.py`); the rest of `_async` is turned into `_sync` by unasync."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import IO, Any, Callable, Optional, Union

import httpx

from .. import _core, _tar
from .._pipe import Pipe

#: Bytes read from a local file at a time.
CHUNK = 1 << 20

Body = Union[bytes, AsyncIterator[bytes]]


async def sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def body(data: Any, length: int | None = None) -> Body:
    """`data` as a request body: text and bytes as they are; a binary file object or an
    (async) iterator of bytes streamed, never read whole. A file whose `length` went
    ahead of it as `Content-Length` must give exactly that many bytes."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if hasattr(data, "read"):
        return _file_chunks(data, length)
    if hasattr(data, "__aiter__"):
        return _async_chunks(data)
    if hasattr(data, "__iter__"):
        return _sync_chunks(data)
    raise TypeError(f"cannot send {type(data).__name__}: give str, bytes, a file or chunks")


async def _file_chunks(f: IO[bytes], length: int | None) -> AsyncIterator[bytes]:
    sent = 0
    while True:
        chunk = await asyncio.to_thread(f.read, CHUNK)
        sent += len(chunk)
        _core.check_file_length(sent, length, ended=not chunk)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise TypeError("open the file in binary mode ('rb'): text would be re-encoded")
        yield chunk


async def _async_chunks(chunks: Any) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield bytes(chunk)


async def _sync_chunks(chunks: Any) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield bytes(chunk)


async def write_to(f: IO[bytes], chunk: bytes) -> None:
    """Writes a downloaded chunk to a local file without blocking the event loop."""
    await asyncio.to_thread(f.write, chunk)


async def from_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A blocking generator (one that reads local files) driven from a worker thread."""
    while True:
        chunk = await asyncio.to_thread(next, chunks, b"")
        if not chunk:
            return
        yield chunk


async def extract(chunks: AsyncIterator[bytes], local: str) -> int:
    """Extracts a tar stream under `local`, in a worker thread fed as chunks arrive."""
    pipe = Pipe()

    def run() -> int:
        try:
            return _tar.extract(pipe, local)  # type: ignore[arg-type]
        finally:
            pipe.abandon()

    extraction = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        async for chunk in chunks:
            if pipe.abandoned:
                break
            await asyncio.to_thread(pipe.put, chunk)
    except BaseException:
        # The download broke: fail the extractor's stream, then report the download.
        await asyncio.to_thread(pipe.break_off)
        with contextlib.suppress(Exception):
            await extraction
        raise
    await asyncio.to_thread(pipe.put, b"")
    return await extraction


#: Failures a resumable upload waits out: the daemon went away or the connection broke.
TRANSIENT = (httpx.TransportError,)


#: Told the bytes moved so far and the total when known.
Progress = Callable[[int, Optional[int]], None]


def counted(data: Body, total: int | None, on_progress: Progress | None) -> Body:
    """`data` as a body that reports its progress as it is sent."""
    if on_progress is None:
        return data
    return _counted(data, total, on_progress)


async def _counted(data: Body, total: int | None, on_progress: Progress) -> AsyncIterator[bytes]:
    sent = 0
    chunks = _single(data) if isinstance(data, bytes) else data
    async for chunk in chunks:
        sent += len(chunk)
        yield chunk
        on_progress(sent, total)


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def counted_stream(
    chunks: AsyncIterator[bytes], on_progress: Progress | None
) -> AsyncIterator[bytes]:
    """Received chunks, reported as they arrive (the total of a stream is unknown)."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        if on_progress is not None:
            on_progress(received, None)
        yield chunk
