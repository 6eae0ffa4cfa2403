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
import selectors
import socket
from typing import IO, Callable

import httpx

#: The pipe's size, so one `splice` moves up to this much.
PIPE = 1 << 20

#: Bytes moved between two reports to the caller, as the copying path reports them.
TELL = 4 << 20


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


def move(
    sock: socket.socket,
    sink: IO[bytes],
    fd: int,
    left: int,
    timeout: float | None,
    tell: Callable[[int], None],
) -> None:
    """Moves the `left` bytes still to come on the non-blocking `sock` into `fd`, the
    descriptor `target` gave for `sink`, telling `tell` as they land. Fails as httpx's
    reads fail: a read timeout, a broken connection, or a body cut short."""
    pipe_out, pipe_in = os.pipe()
    try:
        try:
            room = fcntl.fcntl(pipe_in, fcntl.F_SETPIPE_SZ, PIPE)
        except OSError:
            room = 64 * 1024  # the default; the limit for an unprivileged process may be less
        with selectors.DefaultSelector() as readable:
            readable.register(sock, selectors.EVENT_READ)
            untold = 0
            while left:
                try:
                    n = os.splice(sock.fileno(), pipe_in, min(room, left), flags=_NONBLOCK)
                except (BlockingIOError, InterruptedError):
                    if not readable.select(timeout):
                        raise httpx.ReadTimeout(
                            "the daemon sent nothing for the read timeout"
                        ) from None
                    continue
                except OSError as error:
                    raise httpx.ReadError(str(error)) from error
                if n == 0:
                    short = f"the daemon closed the connection {left} bytes short"
                    raise httpx.RemoteProtocolError(short)
                _drain(pipe_out, fd, n)
                left -= n
                untold += n
                if untold >= TELL or not left:
                    tell(untold)
                    untold = 0
    finally:
        os.close(pipe_out)
        os.close(pipe_in)
        # A buffered writer keeps its own idea of the descriptor's offset: tell it where
        # the splices left it, so its next write or seek is where the caller expects.
        if isinstance(sink, io.BufferedWriter) and sink.seekable():
            sink.seek(os.lseek(fd, 0, os.SEEK_CUR))


_NONBLOCK = getattr(os, "SPLICE_F_NONBLOCK", 0) | getattr(os, "SPLICE_F_MOVE", 0)


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
