"""The sync client's I/O helpers, twin of `_async/_io.py`: request bodies as byte
iterators, local file reads and writes, and sleeping."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import IO, Any, Callable, Optional, Union

import httpcore
import httpx

from .. import _core, _splice, _tar
from .._pipe import IterReader

#: Bytes read from a local file at a time.
CHUNK = 1 << 20

Body = Union[bytes, Iterator[bytes]]


def sleep(seconds: float) -> None:
    time.sleep(seconds)


def body(data: Any, length: int | None = None) -> Body:
    """`data` as a request body: text and bytes as they are; a binary file object or an
    iterator of bytes streamed, never read whole."""
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    if hasattr(data, "read"):
        return _file_chunks(data, length)
    if hasattr(data, "__aiter__"):
        raise TypeError("the sync client takes iterators, not async iterators")
    if hasattr(data, "__iter__"):
        return _sync_chunks(data)
    raise TypeError(f"cannot send {type(data).__name__}: give str, bytes, a file or chunks")


def _file_chunks(f: IO[bytes], length: int | None) -> Iterator[bytes]:
    sent = 0
    while True:
        chunk = f.read(CHUNK)
        sent += len(chunk)
        _core.check_file_length(sent, length, ended=not chunk)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise TypeError("open the file in binary mode ('rb'): text would be re-encoded")
        yield chunk


def _sync_chunks(chunks: Any) -> Iterator[bytes]:
    for chunk in chunks:
        yield bytes(chunk)


def write_to(f: IO[bytes], chunk: bytes) -> None:
    """Writes a downloaded chunk to a local file."""
    f.write(chunk)


def from_thread(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The sync client reads local files where it runs."""
    return chunks


def extract(chunks: Iterator[bytes], local: str) -> int:
    """Extracts a tar stream under `local` as its chunks arrive."""
    return _tar.extract(IterReader(chunks), local)  # type: ignore[arg-type]


#: Failures a resumable upload waits out: the daemon went away or the connection broke.
TRANSIENT = (httpx.TransportError,)


#: Told the bytes moved so far and the total when known.
Progress = Callable[[int, Optional[int]], None]


def counted(data: Body, total: int | None, on_progress: Progress | None) -> Body:
    """`data` as a body that reports its progress as it is sent."""
    if on_progress is None:
        return data
    return _counted(data, total, on_progress)


def _counted(data: Body, total: int | None, on_progress: Progress) -> Iterator[bytes]:
    sent = 0
    chunks = [data] if isinstance(data, bytes) else data
    for chunk in chunks:
        sent += len(chunk)
        yield chunk
        on_progress(sent, total)


def counted_stream(chunks: Iterator[bytes], on_progress: Progress | None) -> Iterator[bytes]:
    """Received chunks, reported as they arrive (the total of a stream is unknown)."""
    received = 0
    for chunk in chunks:
        received += len(chunk)
        if on_progress is not None:
            on_progress(received, None)
        yield chunk


def network_backend(inner: httpcore.NetworkBackend, *, tls: bool) -> httpcore.NetworkBackend:
    """httpcore's own: its sync streams read the socket directly already."""
    return inner


#: Told the bytes just written.
Told = Callable[[int], None]

#: Takes the rest of a body read past h11, given the connection's stream, the bytes
#: still to come and the read timeout; False, having read nothing, if it would not.
Rest = Callable[[httpcore.NetworkStream, int, Optional[float]], bool]


def copy_rest(
    stream: httpcore.NetworkStream,
    sink: IO[bytes],
    left: int,
    timeout: float | None,
    told: Told,
) -> bool:
    """Moves the `left` bytes still to come on `stream` into `sink` by `splice`, when
    `sink` is a plain file and `stream` a plain TCP socket (`_splice.py`). False, having
    read nothing, otherwise: the sync client then writes each chunk as it reads it, with
    nothing handed to another thread, so its chunk loop is already the copy."""
    sock = stream.get_extra_info("socket")
    if not isinstance(sock, socket.socket) or stream.get_extra_info("ssl_object") is not None:
        return False
    return _splice.into_file(sock, sink, left, timeout, told)
