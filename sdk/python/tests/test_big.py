"""A 1 GiB round trip through the async client with this process's RSS sampled: the SDK
streams, so memory stays flat whatever the size."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from airlock import AsyncSandbox

from .conftest import Daemon

GIB = 1 << 30
BLOCK = hashlib.sha256(b"block").digest() * (1 << 15)  # 1 MiB


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def test_a_gibibyte_round_trip_in_flat_memory(env: Daemon) -> None:
    peak = rss_kib()
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib())
            await asyncio.sleep(0.05)

    async def source() -> AsyncIterator[bytes]:
        for _ in range(GIB // len(BLOCK)):
            yield BLOCK

    expected = hashlib.sha256()
    for _ in range(GIB // len(BLOCK)):
        expected.update(BLOCK)
    before = rss_kib()
    sampler = asyncio.ensure_future(sample())
    async with await AsyncSandbox.create() as sb:
        written = await sb.files.write("/workspace/big", source(), checksum="sha256")
        assert written.sha256 == expected.hexdigest() and written.entry.size == GIB
        got = hashlib.sha256()
        total = 0
        async for chunk in await sb.files.read("/workspace/big", format="stream"):
            got.update(chunk)
            total += len(chunk)
        assert total == GIB and got.hexdigest() == expected.hexdigest()
    done.set()
    await sampler
    growth = peak - before
    assert growth < 64 * 1024, f"the client's RSS grew {growth} KiB moving 1 GiB"
