"""The rest of a download read straight from a non-blocking socket on a blocking
thread: the loop shared by the two ways of landing it, `_splice.py` (into a file, by the
kernel) and `_async/_io.py` (through one reused buffer). It waits for the socket the
portable way (`select.poll` is not on every platform) and fails as httpx's own reads
fail: a read timeout, a broken connection, or a body cut short."""

from __future__ import annotations

import selectors
import socket
from typing import Callable

import httpx

#: Bytes landed between two reports to the caller. In the async client each report wakes
#: the event loop, whose thread then contends with the copying one: reported after every
#: read, a 1 GiB download took 0.25–0.32 s against 0.17–0.21 s unreported (by hand).
TELL = 4 << 20


def receive(
    sock: socket.socket,
    left: int,
    timeout: float | None,
    tell: Callable[[int], None],
    take: Callable[[int], int],
    land: Callable[[int], None],
) -> None:
    """Takes the `left` bytes still to come on `sock`. `take(most)` reads up to `most` of
    them off the socket and answers how many (raising `BlockingIOError` when none has
    arrived); `land(n)` puts the `n` just taken where they go, its failures its own;
    `tell` hears how many have landed, every `TELL` bytes and at the end."""
    with selectors.DefaultSelector() as readable:
        readable.register(sock, selectors.EVENT_READ)
        untold = 0
        while left:
            try:
                n = take(left)
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
            land(n)
            left -= n
            untold += n
            if untold >= TELL or not left:
                tell(untold)
                untold = 0
