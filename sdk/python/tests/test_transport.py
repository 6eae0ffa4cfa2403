"""Reads from the daemon's socket take up to 256 KiB, not httpcore's 64 KiB: a download's
chunks arrive as read, so a big file shows it. Fails if an httpx release moves the pool
the transport wraps (the wrapping then silently does nothing)."""

from __future__ import annotations

import os

import httpx

from airlock import AsyncSandbox, Sandbox
from airlock._async import _sockets
from airlock._async import _transport as async_transport
from airlock._sync import _transport as sync_transport

from .conftest import Daemon

SIZE = 8 << 20
HTTPCORE_READ = 64 * 1024


def test_sync_downloads_read_more_than_httpcore_asks(env: Daemon) -> None:
    content = os.urandom(SIZE)
    with Sandbox.create() as sb:
        sb.files.write("/workspace/wide", content)
        chunks = list(sb.files.read("/workspace/wide", format="stream"))
    assert b"".join(chunks) == content
    assert max(map(len, chunks)) > HTTPCORE_READ
    assert max(map(len, chunks)) <= sync_transport.READ


async def test_async_downloads_read_more_than_httpcore_asks(env: Daemon) -> None:
    content = os.urandom(SIZE)
    async with await AsyncSandbox.create() as sb:
        await sb.files.write("/workspace/wide", content)
        stream = await sb.files.read("/workspace/wide", format="stream")
        chunks = [chunk async for chunk in stream]
    assert b"".join(chunks) == content
    assert max(map(len, chunks)) > HTTPCORE_READ
    assert max(map(len, chunks)) <= async_transport.READ


def test_only_plain_http_goes_through_the_async_clients_own_sockets() -> None:
    limits = httpx.Limits()

    def backend_of(url: str) -> object:
        pool = async_transport.transport(limits, url)._pool
        return pool._network_backend._inner  # type: ignore[attr-defined]

    assert isinstance(backend_of("http://127.0.0.1:7711"), _sockets.AsyncioSockets)
    assert not isinstance(backend_of("https://airlock.example"), _sockets.AsyncioSockets)
