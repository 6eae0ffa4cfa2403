"""One timed transfer through the Python SDK, for bench/run's faces table.

Usage: transfer.py up|down SANDBOX_ID LOCAL REMOTE   (AIRLOCK_URL and AIRLOCK_TOKEN set)
Prints the transfer's seconds, timed inside the process so the interpreter's start-up is
not charged to the SDK, and the bytes it moved.
"""

import os
import sys
import time

from airlock import Sandbox


def main() -> None:
    direction, sandbox_id, local, remote = sys.argv[1:5]
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


if __name__ == "__main__":
    main()
