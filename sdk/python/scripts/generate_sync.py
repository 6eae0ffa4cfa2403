"""Generates the sync client (`src/airlock/_sync`) from the async one with unasync, as
httpx and E2B do: one implementation, two faces. `_io.py` is hand-written on both sides.

Usage: python scripts/generate_sync.py [--check]   (--check fails if _sync is stale)
"""

from __future__ import annotations

import filecmp
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

SRC = Path(__file__).resolve().parent.parent / "src" / "airlock"
GENERATED = [
    "__init__.py",
    "http.py",
    "files.py",
    "commands.py",
    "sandbox.py",
    "_transport.py",
    "_body.py",
]
RENAMES = {
    "AsyncHTTP": "HTTP",
    "AsyncFiles": "Files",
    "AsyncCommands": "Commands",
    "AsyncSandbox": "Sandbox",
    "AsyncClient": "Client",
    "AsyncHTTPTransport": "HTTPTransport",
    "AsyncNetworkBackend": "NetworkBackend",
    "AsyncNetworkStream": "NetworkStream",
    "aclose": "close",
    "aread": "read",
    "aiter_bytes": "iter_bytes",
    "aiter_raw": "iter_raw",
    "aiter_lines": "iter_lines",
    "_async": "_sync",
}


def generate(into: Path) -> None:
    rule = unasync.Rule(str(SRC / "_async"), str(into), additional_replacements=RENAMES)
    unasync.unasync_files([str(SRC / "_async" / name) for name in GENERATED], [rule])
    # Shorter names re-wrap lines and re-sort imports: format as the source is.
    files = [str(into / name) for name in GENERATED]
    config = ["--config", str(SRC.parent.parent / "pyproject.toml")]
    ruff = [sys.executable, "-m", "ruff"]
    subprocess.run(
        [*ruff, "check", "--quiet", "--fix", "--select", "I", *config, *files], check=True
    )
    subprocess.run([*ruff, "format", "--quiet", *config, *files], check=True)


def main() -> int:
    if "--check" not in sys.argv:
        generate(SRC / "_sync")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        generate(Path(scratch))
        stale = [
            n
            for n in GENERATED
            if not filecmp.cmp(Path(scratch) / n, SRC / "_sync" / n, shallow=False)
        ]
    if stale:
        print(f"_sync is stale ({', '.join(stale)}): run python scripts/generate_sync.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
