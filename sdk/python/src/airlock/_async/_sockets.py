"""Plain-TCP connections for the async client, on asyncio's own socket calls.

httpx's async transport reaches sockets through anyio, whose stream turns the socket's
reading on before each read and off after it: two `epoll_ctl` calls and a trip through
the event loop per read, even when the bytes are already waiting. A 1 GiB download into
`/dev/null` took 0.60 s through it at best, and 1.2 s once reads came in at under
100 KiB, against 0.19 s for the sync client (by hand, on the daemon's machine). Here a
read is a `recv` on the non-blocking socket, and only when nothing is waiting does the
stream wait for the loop to say the socket is readable: 0.15–0.21 s for the same
download, read 256 KiB at a time.

Only plain `http://` connections on a loop that watches file descriptors (not Windows'
proactor) come here; TLS and Unix sockets keep httpcore's own backend. A stream also
lends its socket to `_io.copy_rest`, which reads a download's bulk on a worker thread.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar, Union

import httpcore

T = TypeVar("T")

#: What a `SocketStream` answers its socket to: nothing else holds bytes read from it.
LENT = "airlock.lent_socket"

#: httpcore's socket options: (level, option, value) triples.
SocketOption = Union[
    tuple[int, int, int], tuple[int, int, Union[bytes, bytearray]], tuple[int, int, None, int]
]


class AsyncioSockets(httpcore.AsyncNetworkBackend):
    """TCP streams on asyncio's socket calls; anything else goes to `inner`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        if not watches_descriptors(loop):
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            sock = await asyncio.wait_for(
                _connect(loop, host, port, local_address, list(socket_options or ())), timeout
            )
        except asyncio.TimeoutError as error:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from error
        except OSError as error:
            raise httpcore.ConnectError(str(error)) from error
        return SocketStream(sock)

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(*args, **kwargs)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def watches_descriptors(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` can say when a socket is ready (Windows' proactor loop cannot)."""
    proactor = getattr(asyncio, "ProactorEventLoop", None)
    return proactor is None or not isinstance(loop, proactor)


async def _connect(
    loop: asyncio.AbstractEventLoop,
    host: str,
    port: int,
    local_address: str | None,
    options: list[SocketOption],
) -> socket.socket:
    """A connected non-blocking socket to the first of `host`'s addresses that answers."""
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    failure: OSError | None = None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            # As asyncio's own connections do: requests are small and go at once.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in options:
                sock.setsockopt(*option)
            if local_address is not None:
                sock.bind((local_address, 0))
            await loop.sock_connect(sock, address)
            return sock
        except OSError as error:
            sock.close()
            failure = error
        except BaseException:
            sock.close()
            raise
    raise failure or OSError(f"{host} has no address")


class SocketStream(httpcore.AsyncNetworkStream):
    """One connection: reads and writes go straight to the socket, waiting on the loop
    only when the socket is not ready."""

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._when_ready(partial(self.socket.recv, max_bytes), False, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        while view:
            sent = await self._when_ready(partial(self.socket.send, view), True, timeout)
            view = view[sent:]

    async def aclose(self) -> None:
        self.socket.close()

    async def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        # Never reached: the transport sends `https://` URLs to httpcore's backend.
        raise httpcore.ConnectError("TLS is not spoken on a plain-TCP connection")

    def get_extra_info(self, info: str) -> Any:
        if info in ("socket", LENT):
            return self.socket
        if info == "client_addr":
            return self.socket.getsockname()
        if info == "server_addr":
            return self.socket.getpeername()
        if info == "is_readable":
            return _readable(self.socket)
        return None

    async def _when_ready(self, call: Callable[[], T], writing: bool, timeout: float | None) -> T:
        """`call`'s answer, once the socket is ready for it: it is tried at once, and
        again each time the loop says the socket is ready, until `timeout` of silence."""
        while True:
            try:
                return call()
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as error:
                failed = httpcore.WriteError if writing else httpcore.ReadError
                raise failed(str(error)) from error
            if not await self._ready(writing, timeout):
                if writing:
                    raise httpcore.WriteTimeout("the daemon took nothing for the write timeout")
                raise httpcore.ReadTimeout("the daemon sent nothing for the read timeout")

    async def _ready(self, writing: bool, timeout: float | None) -> bool:
        """Waits until the socket is ready; False when `timeout` passed first."""
        loop = asyncio.get_running_loop()
        watch, unwatch = (
            (loop.add_writer, loop.remove_writer)
            if writing
            else (loop.add_reader, loop.remove_reader)
        )
        ready: asyncio.Future[bool] = loop.create_future()
        fd = self.socket.fileno()
        watch(fd, _settle, ready, True)
        timer = None if timeout is None else loop.call_later(timeout, _settle, ready, False)
        try:
            return await ready
        finally:
            if timer is not None:
                timer.cancel()
            unwatch(fd)


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the daemon closed it, or sent
    what no request asked for. Either way it is not reused."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        return True
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
