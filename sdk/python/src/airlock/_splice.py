"""A download's rest moved from the socket into a local file by the kernel, on Linux.

Read with `recv_into` and written with `write`, each byte is copied twice: out of the
socket, then into the page cache. `os.splice` moves the socket's pages into a pipe
without a copy, and from the pipe into the file with one, the kernel's. Only for a
plain file object whose descriptor can be written at its offset: `io.FileIO`, or an
`io.BufferedWriter` over one (flushed first, and told its new offset after); not a file
opened to append, which `splice` refuses. Shared by the sync and async clients, each
of which calls it with a plain TCP socket (never TLS) from a blocking context.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import socket
from typing import IO, Callable

from . import _socket_rest

#: The pipe's size, so one `splice` moves up to this much.
PIPE = 1 << 20


def into_file(
    sock: socket.socket,
    sink: IO[bytes],
    left: int,
    timeout: float | None,
    tell: Callable[[int], None],
) -> bool:
    """Moves the `left` bytes still to come on the non-blocking `sock` into `sink`,
    telling `tell` as they land, when `sink` can be spliced into (see `target`); False,
    having read nothing, when it cannot. Fails as httpx's reads fail."""
    fd = target(sink)
    if fd is None:
        return False
    pipe_out, pipe_in = os.pipe()
    try:
        try:
            room = fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE)
        except OSError:
            room = 64 * 1024  # the default; the limit for an unprivileged process may be less

        def take(most: int) -> int:
            return os.splice(sock.fileno(), pipe_in, min(room, most), flags=_FROM_SOCKET)

        _socket_rest.receive(sock, left, timeout, tell, take, lambda n: _drain(pipe_out, fd, n))
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
        # A buffered writer keeps its own idea of the descriptor's offset: tell it where
        # the splices left it, so its next write or seek is where the caller expects.
        if isinstance(sink, io.BufferedWriter) and sink.seekable():
            sink.seek(os.lseek(fd, 0, os.SEEK_CUR))
    return True


def target(sink: IO[bytes]) -> int | None:
    """The descriptor a download into `sink` may be spliced into, with anything `sink`
    has buffered written out first; None when it must be written to as it is."""
    if not hasattr(os, "splice") or type(sink) not in (io.FileIO, io.BufferedWriter):
        return None
    try:
        fd = sink.fileno()
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND:
            return None
    except (OSError, ValueError):
        return None
    sink.flush()
    return fd


#: Never waits on the socket (`_socket_rest` does the waiting); moves pages, not copies.
_FROM_SOCKET = getattr(os, "SPLICE_F_NONBLOCK", 0) | getattr(os, "SPLICE_F_MOVE", 0)


def _drain(pipe: int, fd: int, n: int) -> None:
    """Moves the `n` bytes in `pipe` into `fd`, by `splice` where `fd` takes it (a
    terminal or some special files do not) and by `read` and `write` where not."""
    while n:
        try:
            moved = os.splice(pipe, fd, n)
        except InterruptedError:
            continue
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            moved = _copy(pipe, fd, n)
        if not moved:
            raise OSError(errno.EIO, "the local file took none of the download")
        n -= moved


def _copy(pipe: int, fd: int, n: int) -> int:
    """Reads up to `n` bytes from `pipe` and writes them all into `fd`."""
    view = memoryview(os.read(pipe, n))
    size = len(view)
    while view:
        view = view[os.write(fd, view) :]
    return size
