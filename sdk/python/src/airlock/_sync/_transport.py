"""httpx's transport, with each read from the daemon's socket taking up to `READ` bytes.

httpcore reads a connection 64 KiB at a time, and every read is one trip through h11
and httpx: a 1 GiB download took about 16,000 of them, 0.85 s into `/dev/null` against
0.50 s with reads of up to 256 KiB (the sync SDK, by hand, three downloads each, twice).
httpcore takes a network backend, but httpx passes none on, so the one its pool was
given is wrapped."""

from __future__ import annotations

from typing import Any

import httpcore
import httpx

from . import _io

#: The most one read from a connection takes.
READ = 256 * 1024


def transport(limits: httpx.Limits, url: str) -> httpx.HTTPTransport:
    """A transport to the daemon at `url` whose connections read up to `READ` bytes at a
    time, through the client's own network backend (`_io.network_backend`). An httpx
    that lays its pool out otherwise keeps httpcore's (the tests notice)."""
    made = httpx.HTTPTransport(limits=limits)
    pool = getattr(made, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        chosen = _io.network_backend(backend, tls=url.startswith("https:"))
        pool._network_backend = WideReads(chosen)  # type: ignore[union-attr]
    return made


class WideReads(httpcore.NetworkBackend):
    """A network backend whose streams read up to `READ` bytes whatever they are asked."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _WideStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _WideStream(self._inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _WideStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max(max_bytes, READ), timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        return _WideStream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)
