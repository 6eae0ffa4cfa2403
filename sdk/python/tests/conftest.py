"""A real daemon for the SDK's tests: `airlock serve` on a free loopback port with its
own home, started once per session (the binary is the workspace's debug build, or
AIRLOCK_BIN)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from airlock._tar import remove_tree

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Daemon:
    url: str
    token: str
    home: Path


def _binary() -> str:
    explicit = os.environ.get("AIRLOCK_BIN")
    if explicit:
        return explicit
    built = REPO / "target" / "debug" / "airlock"
    if not built.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "airlock-cli"], cwd=REPO, check=True)
    return str(built)


@pytest.fixture(scope="session")
def daemon() -> Iterator[Daemon]:
    scratch = tempfile.mkdtemp(prefix="airlock-sdk-")
    try:
        home = Path(scratch) / "home"
        home.mkdir()
        log = open(Path(scratch) / "daemon.log", "wb")  # noqa: SIM115 - lives as long as the daemon
        child = subprocess.Popen(
            [_binary(), "serve", "--listen", "127.0.0.1:0", "--home", str(home)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        try:
            url = _wait_ready(child, home)
            token = (home / "token").read_text().strip()
            yield Daemon(url=url, token=token, home=home)
        finally:
            child.terminate()
            child.wait(timeout=30)
            log.close()
    finally:
        # Not shutil.rmtree: on Python 3.11 it recurses once a level, and a deleted
        # sandbox's deep tree may still wait in the daemon's trash.
        remove_tree(scratch)


def _wait_ready(child: subprocess.Popen[bytes], home: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the daemon exited with {child.returncode}")
        listen = home / "listen"
        if listen.exists():
            url = "http://" + listen.read_text().strip()
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return url
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError("the daemon did not become ready")


@pytest.fixture
def env(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    """The daemon named by AIRLOCK_URL and AIRLOCK_TOKEN, as users set them."""
    monkeypatch.setenv("AIRLOCK_URL", daemon.url)
    monkeypatch.setenv("AIRLOCK_TOKEN", daemon.token)
    return daemon
