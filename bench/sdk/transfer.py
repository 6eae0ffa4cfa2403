"""One timed transfer through the Python SDK, for bench/run's faces table.

Usage: transfer.py up|down SANDBOX_ID LOCAL REMOTE [async]   (AIRLOCK_URL and AIRLOCK_TOKEN set)
With `async`, the transfer goes through `AsyncSandbox` on an asyncio loop.
Prints the transfer's seconds, timed inside the process so the interpreter's start-up is
not charged to the SDK, and the bytes it moved.
"""

import asyncio
import os
import sys
import time

from airlock import AsyncSandbox, Sandbox


def transfer(direction: str, sandbox_id: str, local: str, remote: str) -> None:
    sandbox = Sandbox.connect(sandbox_id)
    try:
        started = time.perf_counter()
        if direction == "up":
            with open(local, "rb") as source:
                sandbox.files.write(remote, source)
            moved = os.path.getsize(local)
        else:
            with open(local, "wb") as sink:
                moved = sandbox.files.read_to(remote, sink)
        print(f"{time.perf_counter() - started:.6f} {moved}")
    finally:
        sandbox.close()


async def transfer_async(
    direction: str, sandbox_id: str, local: str, remote: str
) -> None:
    sandbox = await AsyncSandbox.connect(sandbox_id)
    try:
        started = time.perf_counter()
        if direction == "up":
            with open(local, "rb") as source:  # noqa: ASYNC230 - the SDK takes an open file
                await sandbox.files.write(remote, source)
            moved = os.path.getsize(local)
        else:
            with open(local, "wb") as sink:  # noqa: ASYNC230 - the SDK takes an open file
                moved = await sandbox.files.read_to(remote, sink)
        print(f"{time.perf_counter() - started:.6f} {moved}")
    finally:
        await sandbox.close()


def main() -> None:
    direction, sandbox_id, local, remote = sys.argv[1:5]
    if sys.argv[5:] == ["async"]:
        asyncio.run(transfer_async(direction, sandbox_id, local, remote))
    else:
        transfer(direction, sandbox_id, local, remote)


if __name__ == "__main__":
    main()
