"""A loopback HTTP/1.1 server for the clients' tests: it answers every request with
whatever the test says, and can stall, close or drop the connection after."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Stub:
    """A loopback HTTP/1.1 server on a thread. Each request is answered by `answer()`:
    the `Content-Length` to promise, the bytes to send, and then `keep` (the connection
    for the next request), `close`, `hold` (silent until the test ends) or `drop` (kept
    a moment for the client to take it as idle, then closed)."""

    def __init__(self, answer: Callable[[], tuple[int, bytes, str]]) -> None:
        self.answer = answer
        self.accepted = 0
        self.done = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.done.is_set():
            try:
                peer, _ = self.listener.accept()
            except OSError:
                continue
            self.accepted += 1
            threading.Thread(target=self._connection, args=(peer,), daemon=True).start()

    def _connection(self, peer: socket.socket) -> None:
        with peer:
            while True:
                head = b""
                while b"\r\n\r\n" not in head:
                    got = peer.recv(65536)
                    if not got:
                        return
                    head += got
                length, sent, then = self.answer()
                peer.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % length + sent)
                if then == "keep":
                    continue
                if then == "hold":
                    self.done.wait(30)
                if then == "drop":
                    time.sleep(0.2)
                return


@contextmanager
def stub(answer: Callable[[], tuple[int, bytes, str]]) -> Iterator[Stub]:
    server = Stub(answer)
    server.thread.start()
    try:
        yield server
    finally:
        server.done.set()
        server.thread.join(10)
        server.listener.close()
