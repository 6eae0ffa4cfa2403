"""A resumable upload cut off by a daemon restart resumes by itself and verifies."""

from __future__ import annotations

import hashlib
import io
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from airlock import Sandbox

from .conftest import _binary, _wait_ready


class Slow(io.BytesIO):
    """A file that hands out its bytes slowly, so a restart lands mid-upload."""

    def read(self, size: Any = -1) -> bytes:
        time.sleep(0.02)
        return super().read(min(size, 128 * 1024) if size and size > 0 else 128 * 1024)


def start(home: Path, listen: str, log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [_binary(), "serve", "--listen", listen, "--home", str(home)],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
    )


def test_an_upload_cut_by_a_restart_resumes_and_verifies() -> None:
    data = hashlib.sha256(b"seed").digest() * (3 << 16)  # 6 MiB
    with tempfile.TemporaryDirectory(prefix="airlock-sdk-restart-") as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        log = open(Path(scratch) / "daemon.log", "ab")  # noqa: SIM115
        child = start(home, "127.0.0.1:0", log)
        try:
            url = _wait_ready(child, home)
            token = (home / "token").read_text().strip()
            sb = Sandbox.create(url=url, token=token)
            outcome: dict[str, Any] = {}

            def upload() -> None:
                try:
                    outcome["written"] = sb.files.write(
                        "/workspace/big.bin",
                        Slow(data),
                        resumable=True,
                        sha256=hashlib.sha256(data).hexdigest(),
                    )
                except Exception as error:  # noqa: BLE001 - the main thread reports it
                    outcome["error"] = error

            worker = threading.Thread(target=upload)
            worker.start()
            time.sleep(0.4)  # some bytes are in, not all
            assert worker.is_alive(), "the upload finished before the daemon was killed"
            child.send_signal(signal.SIGKILL)
            child.wait()
            (home / "listen").unlink()
            child = start(home, url.removeprefix("http://"), log)
            _wait_ready(child, home)
            worker.join(timeout=120)
            assert "error" not in outcome, outcome.get("error")
            written = outcome["written"]
            assert written.sha256 == hashlib.sha256(data).hexdigest()
            assert len(written.crc64nvme) == 16
            assert sb.files.read("/workspace/big.bin") == data
            sb.kill()
            sb.close()
        finally:
            child.terminate()
            child.wait(timeout=30)
            log.close()
