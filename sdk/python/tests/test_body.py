"""Downloads read past h11 once large (`_body.py`): every size around the switch arrives
whole, a stream left part-way leaves the pool usable, a server that sends too little or
stops sending fails the read (never too few bytes, never a hang), and one that sends too
much gives the body its stated length."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from airlock import AsyncSandbox, Sandbox
from airlock._config import discover
from airlock._sync import _body as sync_body
from airlock._sync import _transport as sync_transport
from airlock._sync.files import Files
from airlock._sync.http import HTTP

from .conftest import Daemon
from .stub import stub

DIRECT = sync_body.DIRECT
SIZES = [0, 1, DIRECT - 1, DIRECT, DIRECT + 1, 3 * DIRECT + 7, 9 * DIRECT]


def test_sync_every_size_around_the_switch_arrives_whole(env: Daemon) -> None:
    with Sandbox.create() as sb:
        contents = {size: os.urandom(size) for size in SIZES}
        for size, content in contents.items():
            sb.files.write(f"/workspace/f{size}", content)
        for size, content in contents.items():
            assert sb.files.read(f"/workspace/f{size}") == content
        # The pool still answers after connections that were closed, not kept.
        sb.files.write("/workspace/after", b"small")
        assert sb.files.read("/workspace/after") == b"small"


async def test_async_every_size_around_the_switch_arrives_whole(env: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        contents = {size: os.urandom(size) for size in SIZES}
        for size, content in contents.items():
            await sb.files.write(f"/workspace/f{size}", content)
        for size, content in contents.items():
            assert await sb.files.read(f"/workspace/f{size}") == content
        await sb.files.write("/workspace/after", b"small")
        assert await sb.files.read("/workspace/after") == b"small"


def test_a_stream_left_part_way_leaves_the_client_usable(env: Daemon) -> None:
    content = os.urandom(8 * DIRECT)
    with Sandbox.create() as sb:
        sb.files.write("/workspace/big", content)
        for _ in range(3):
            stream = sb.files.read("/workspace/big", format="stream")
            first = next(stream)
            second = next(stream)
            assert content.startswith(first + second)
            stream.close()  # type: ignore[attr-defined]
        assert sb.files.read("/workspace/big") == content


async def test_async_stream_left_part_way_leaves_the_client_usable(env: Daemon) -> None:
    content = os.urandom(8 * DIRECT)
    async with await AsyncSandbox.create() as sb:
        await sb.files.write("/workspace/big", content)
        for _ in range(3):
            stream = await sb.files.read("/workspace/big", format="stream")
            first = await stream.__anext__()
            second = await stream.__anext__()
            assert content.startswith(first + second)
            await stream.aclose()  # type: ignore[attr-defined]
        assert await sb.files.read("/workspace/big") == content


@contextmanager
def server(length: int, sent: bytes, *, hold: bool = False) -> Iterator[str]:
    """A server that promises `length` bytes, sends `sent`, then closes the connection
    (or holds it open, silent, with `hold`)."""
    with stub(lambda: (length, sent, "hold" if hold else "close")) as running:
        yield running.url + "/"


def read_all(url: str, timeout: float = 10.0) -> bytes:
    limits = httpx.Limits(keepalive_expiry=20.0)
    transport = sync_transport.transport(limits, url)
    with (
        httpx.Client(transport=transport, timeout=timeout) as client,
        client.stream("GET", url) as response,
    ):
        return b"".join(sync_body.chunks(response))


def test_a_body_cut_short_fails() -> None:
    short = pytest.raises(httpx.RemoteProtocolError, match="bytes short")
    with server(8 * DIRECT, os.urandom(3 * DIRECT)) as url, short:
        read_all(url)


def test_a_body_longer_than_its_length_ends_at_its_length() -> None:
    content = os.urandom(5 * DIRECT)
    with server(4 * DIRECT + 12345, content) as url:
        assert read_all(url) == content[: 4 * DIRECT + 12345]


def test_a_body_that_stalls_times_out() -> None:
    stalled = server(8 * DIRECT, os.urandom(3 * DIRECT), hold=True)
    with stalled as url, pytest.raises(httpx.ReadTimeout):
        read_all(url, timeout=0.5)


def test_a_stalled_download_through_the_client_times_out() -> None:
    # The client's own streamed reads keep its read timeout (they once had none).
    stalled = server(8 * DIRECT, os.urandom(3 * DIRECT), hold=True)
    with stalled as url, pytest.raises(httpx.ReadTimeout):
        Files(HTTP(discover(url.rstrip("/"), "token", 0.5)), "x").read_to("/f", io.BytesIO())


def test_a_body_of_its_length_arrives() -> None:
    content = os.urandom(4 * DIRECT + 11)
    with server(len(content), content) as url:
        assert read_all(url) == content
