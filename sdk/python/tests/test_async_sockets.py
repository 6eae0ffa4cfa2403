"""The async client's own connections (`_async/_sockets.py`) and its downloads copied on
one thread (`_io.copy_rest`): every size arrives whole into a file and into a sink that
keeps what it is given; progress is told on the loop; a body cut short, stalled or too
long fails or ends as a streamed one does; a cancelled download stops its thread and
writes nothing after; an idle connection the server closed is not reused; a refused
connection is `ConnectError`."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import threading
import time
from pathlib import Path

import httpcore
import httpx
import pytest

from airlock import AsyncSandbox
from airlock._async import _sockets
from airlock._async.files import AsyncFiles
from airlock._async.http import AsyncHTTP
from airlock._config import discover
from airlock._sync import _body as sync_body

from .conftest import Daemon
from .stub import stub

DIRECT = sync_body.DIRECT
SIZES = [0, 1, DIRECT - 1, DIRECT, DIRECT + 1, 3 * DIRECT + 7, 9 * DIRECT]


class Keeper:
    """A sink that keeps every chunk it is given, as a list of chunks would: a reused
    buffer handed to it would show as corrupted content."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.lock = threading.Lock()

    def write(self, chunk: bytes) -> int:
        with self.lock:
            self.chunks.append(chunk)
        return len(chunk)

    def size(self) -> int:
        with self.lock:
            return sum(map(len, self.chunks))


async def test_read_to_every_size_arrives_whole(env: Daemon, tmp_path: Path) -> None:
    async with await AsyncSandbox.create() as sb:
        contents = {size: os.urandom(size) for size in SIZES}
        for size, content in contents.items():
            await sb.files.write(f"/workspace/f{size}", content)
        for size, content in contents.items():
            local = tmp_path / f"f{size}"
            with open(local, "wb") as f:
                assert await sb.files.read_to(f"/workspace/f{size}", f) == size
            assert local.read_bytes() == content
            keeper = Keeper()
            assert await sb.files.read_to(f"/workspace/f{size}", keeper) == size  # type: ignore[arg-type]
            assert all(type(chunk) is bytes for chunk in keeper.chunks)
            assert b"".join(keeper.chunks) == content
        # The pool goes on after connections that were closed, not kept.
        await sb.files.write("/workspace/after", b"small")
        assert await sb.files.read("/workspace/after") == b"small"


async def test_progress_is_told_on_the_loop_in_order(env: Daemon) -> None:
    size = 9 * DIRECT + 3
    told: list[tuple[int, int | None, int]] = []
    async with await AsyncSandbox.create() as sb:
        await sb.files.write("/workspace/big", os.urandom(size))
        with open(os.devnull, "wb") as f:
            await sb.files.read_to(
                "/workspace/big",
                f,
                on_progress=lambda done, total: told.append((done, total, threading.get_ident())),
            )
    assert told[-1][:2] == (size, size)
    assert [done for done, _, _ in told] == sorted(done for done, _, _ in told)
    assert {thread for _, _, thread in told} == {threading.get_ident()}


def files_at(url: str, timeout: float = 30.0) -> AsyncFiles:
    return AsyncFiles(AsyncHTTP(discover(url, "token", timeout)), "x")


async def test_a_body_cut_short_fails(tmp_path: Path) -> None:
    with stub(lambda: (8 * DIRECT, os.urandom(3 * DIRECT), "close")) as server:
        files = files_at(server.url)
        with (
            open(tmp_path / "out", "wb") as f,
            pytest.raises(httpx.RemoteProtocolError, match="bytes short"),
        ):
            await files.read_to("/f", f)


async def test_a_body_longer_than_its_length_ends_at_its_length(tmp_path: Path) -> None:
    content = os.urandom(5 * DIRECT)
    with stub(lambda: (4 * DIRECT + 12345, content, "close")) as server:
        files = files_at(server.url)
        with open(tmp_path / "out", "wb") as f:
            assert await files.read_to("/f", f) == 4 * DIRECT + 12345
    assert (tmp_path / "out").read_bytes() == content[: 4 * DIRECT + 12345]


async def test_a_body_that_stalls_times_out() -> None:
    with stub(lambda: (8 * DIRECT, os.urandom(3 * DIRECT), "hold")) as server:
        files = files_at(server.url, timeout=0.5)
        with pytest.raises(httpx.ReadTimeout):
            await files.read_to("/f", Keeper())  # type: ignore[arg-type]


async def test_a_cancelled_download_stops_and_writes_nothing_after() -> None:
    keeper = Keeper()
    with stub(lambda: (8 * DIRECT, os.urandom(3 * DIRECT), "hold")) as server:
        # Nothing more comes for 30 s: only the connection's shutdown ends the thread's
        # wait in time.
        files = files_at(server.url, timeout=30.0)
        download = asyncio.ensure_future(files.read_to("/f", keeper))  # type: ignore[arg-type]
        while keeper.size() < 3 * DIRECT:
            assert not download.done()
            await asyncio.sleep(0.01)
        download.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(download, 5)
        assert time.monotonic() - started < 5
        written = keeper.size()
        await asyncio.sleep(0.3)
        assert keeper.size() == written


async def test_small_answers_share_one_connection() -> None:
    with stub(lambda: (5, b"hello", "keep")) as server:
        files = files_at(server.url)
        for _ in range(5):
            assert await files.read("/f") == b"hello"
        assert server.accepted == 1


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    with stub(lambda: (5, b"hello", "drop")) as server:
        files = files_at(server.url)
        assert await files.read("/f") == b"hello"
        await asyncio.sleep(0.5)
        assert await files.read("/f") == b"hello"
        assert server.accepted == 2


async def test_a_refused_connection_is_connect_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        await files_at(f"http://127.0.0.1:{port}").read("/f")
    backend = _sockets.AsyncioSockets(inner=None)  # type: ignore[arg-type]
    with pytest.raises(httpcore.ConnectError) as refused:
        await backend.connect_tcp("127.0.0.1", port)
    assert isinstance(refused.value.__cause__, OSError)
    assert refused.value.__cause__.errno == errno.ECONNREFUSED
