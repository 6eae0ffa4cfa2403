"""The async client end to end: the same surface with await, 50 concurrent writes with
asyncio.gather, and streams that never hold a file whole."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from airlock import AsyncSandbox, NotFoundError

from .conftest import Daemon
from .crc import crc64nvme

BINARY = bytes(range(256)) * 1000


async def test_the_async_surface(env: Daemon) -> None:
    async with await AsyncSandbox.create(labels={"suite": "async"}) as sb:
        again = await AsyncSandbox.connect(sb.sandbox_id)
        assert (await again.get_info()).labels == {"suite": "async"}
        await again.close()
        assert sb.sandbox_id in [s.sandbox_id for s in await AsyncSandbox.list()]
        f = sb.files
        await f.write("/workspace/t", "text", mode="0640")
        assert await f.read("/workspace/t", format="text") == "text"

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(BINARY), 4096):
                yield BINARY[i : i + 4096]

        await f.write("/workspace/async-iter", chunks())
        await f.write("/workspace/file", io.BytesIO(BINARY))
        streamed = b"".join(
            [c async for c in await f.read("/workspace/async-iter", format="stream")]
        )
        assert streamed == BINARY
        out = io.BytesIO()
        await f.read_to("/workspace/file", out)
        assert out.getvalue() == BINARY
        assert (await f.stat("/workspace/t")).mode == 0o640
        assert await f.exists("/workspace/t")
        await f.make_dir("/workspace/d")
        await f.rename("/workspace/t", "/workspace/d/t")
        assert [e.name for e in await f.list("/workspace/d")] == ["t"]
        batch = await f.write_files([{"path": "/workspace/b/1", "data": b"1"}])
        assert batch.written == 1
        await f.remove("/workspace/d", recursive=True)
        seen: list[str] = []
        result = await sb.commands.run("echo one; echo two", on_stdout=seen.append)
        assert result.stdout == "one\ntwo\n" and "".join(seen) == "one\ntwo\n"
        with pytest.raises(NotFoundError):
            await f.read("/workspace/d/t")


async def test_fifty_concurrent_writes(env: Daemon) -> None:
    async with await AsyncSandbox.create() as sb:
        payloads = {
            f"/workspace/many/{i}": hashlib.sha256(str(i).encode()).digest() * 1000
            for i in range(50)
        }
        written = await asyncio.gather(
            *(sb.files.write(path, data, parents=True) for path, data in payloads.items())
        )
        assert all(w.crc64nvme == crc64nvme(payloads[w.path]) for w in written)
        back = await asyncio.gather(*(sb.files.read(path) for path in payloads))
        assert back == list(payloads.values())


async def test_the_rest_of_the_async_surface(env: Daemon, tmp_path: Path) -> None:
    """The methods the first async test leaves out, so every method runs on both
    clients: get_info, mirror mode both ways, resumable writes, progress, watch."""
    async with await AsyncSandbox.create() as sb:
        f = sb.files
        sent: list[int] = []
        await f.write(
            "/workspace/r", BINARY, resumable=True, on_progress=lambda s, _: sent.append(s)
        )
        assert sent[-1] == len(BINARY) and await f.read("/workspace/r") == BINARY
        assert (await f.get_info("/workspace/r")).size == len(BINARY)
        got: list[int] = []
        await f.read_to("/workspace/r", io.BytesIO(), on_progress=lambda s, _: got.append(s))
        assert got[-1] == len(BINARY)
        local = tmp_path / "mirror"
        local.mkdir()
        (local / "a").write_text("a")
        first = await f.sync(str(local), "/workspace/m")
        assert first.sent == 1
        await sb.commands.run("echo b > /workspace/m/b", check=True)
        back = await f.sync(str(local), "/workspace/m", back=True)
        assert back.sent == 1 and (local / "b").read_text() == "b\n"
        await f.make_dir("/workspace/w")
        events = f.watch_dir("/workspace/w", recursive=False)
        assert (await events.__anext__()).type == "ready"
        await f.write("/workspace/w/x", "x")
        async for event in events:
            if event.path == "/workspace/w/x":
                break
        await events.aclose()  # type: ignore[attr-defined]


async def test_a_sandbox_token_reaches_its_sandbox_alone(env: Daemon) -> None:
    from airlock import AuthenticationError, PermissionDeniedError

    async with await AsyncSandbox.create() as sb:
        await sb.files.write("/workspace/shared.txt", "for the reviewer")
        token = await sb.create_token("read", ttl=600)
        reviewer = await AsyncSandbox.connect(sb.sandbox_id, token=token)
        assert (
            await reviewer.files.read("/workspace/shared.txt", format="text") == "for the reviewer"
        )
        with pytest.raises(PermissionDeniedError):
            await reviewer.files.write("/workspace/x", "no")
        with pytest.raises(PermissionDeniedError):
            await AsyncSandbox.list(token=token)
        await reviewer.close()
    with pytest.raises(AuthenticationError):
        await AsyncSandbox.connect(sb.sandbox_id, token=token)


async def test_signed_urls_need_no_token(env: Daemon) -> None:
    import httpx

    async with await AsyncSandbox.create() as sb:
        data = bytes(range(256)) * 1024
        await sb.files.write("/workspace/report.bin", data)
        down = await sb.download_url("/workspace/report.bin", ttl=60)
        up = await sb.upload_url("/workspace/incoming.bin", ttl=60)
        async with httpx.AsyncClient() as plain:
            got = await plain.get(down)
            assert got.status_code == 200 and got.content == data
            ranged = await plain.get(down, headers={"Range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == data[10:20]
            sent = await plain.put(up, content=b"from a browser")
            assert sent.status_code == 201
            # Each URL grants its one method only.
            assert (await plain.put(down, content=b"x")).status_code == 403
            assert (await plain.get(up)).status_code == 403
        assert await sb.files.read("/workspace/incoming.bin") == b"from a browser"
