"""Downloads spliced from the socket into a local file (`_splice.py`), by both clients:
what the file held before and what is written after stay where they belong, whatever
kind of file object it is; a file opened to append is written the other way; a body cut
short or stalled fails as a copied one does."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from airlock._async.files import AsyncFiles
from airlock._async.http import AsyncHTTP
from airlock._config import discover
from airlock._splice import target
from airlock._sync import _body as sync_body
from airlock._sync.files import Files
from airlock._sync.http import HTTP

from .stub import stub

SIZE = 5 * sync_body.DIRECT + 12345

#: How each client downloads `/f` from `url` into `f`.
Download = Callable[[str, IO[bytes], float], Any]


def sync_read(url: str, f: IO[bytes], timeout: float) -> int:
    return Files(HTTP(discover(url, "token", timeout)), "x").read_to("/f", f)


async def async_read(url: str, f: IO[bytes], timeout: float) -> int:
    return await AsyncFiles(AsyncHTTP(discover(url, "token", timeout)), "x").read_to("/f", f)


async def read(download: Download, url: str, f: IO[bytes], timeout: float = 30.0) -> int:
    got = download(url, f, timeout)
    return int(await got) if download is async_read else int(got)


CLIENTS = [pytest.param(sync_read, id="sync"), pytest.param(async_read, id="async")]

#: File objects that are spliced into, and one that is not.
OPENERS: dict[str, Callable[[Path], IO[bytes]]] = {
    "buffered": lambda p: open(p, "wb"),  # noqa: SIM115
    "unbuffered": lambda p: open(p, "wb", buffering=0),  # noqa: SIM115
    "append": lambda p: open(p, "ab"),  # noqa: SIM115
}


def test_only_plain_files_not_opened_to_append_are_spliced_into(tmp_path: Path) -> None:
    with open(tmp_path / "w", "wb") as buffered, open(tmp_path / "u", "wb", buffering=0) as raw:
        assert target(buffered) == buffered.fileno()
        assert target(raw) == raw.fileno()
    with open(tmp_path / "a", "ab") as appended, open(tmp_path / "r", "w+b") as both:
        assert target(appended) is None
        assert target(both) is None
    assert target(io.BytesIO()) is None


@pytest.mark.parametrize("download", CLIENTS)
@pytest.mark.parametrize("kind", OPENERS)
async def test_a_download_lands_between_what_came_before_and_after(
    tmp_path: Path, download: Download, kind: str
) -> None:
    content = os.urandom(SIZE)
    local = tmp_path / "out"
    local.write_bytes(b"old:" if kind == "append" else b"")
    with stub(lambda: (SIZE, content, "close")) as server, OPENERS[kind](local) as f:
        f.write(b"kept:")  # still in the buffer of a buffered writer
        assert await read(download, server.url, f) == SIZE
        if kind != "append":
            assert f.tell() == 5 + SIZE, "the writer knows where the download ended"
        f.write(b":after")
    before = b"old:" if kind == "append" else b""
    assert local.read_bytes() == before + b"kept:" + content + b":after"


#: A body that breaks off, and how its download fails: as a copied one does.
BROKEN = [
    pytest.param("close", httpx.RemoteProtocolError, "bytes short", 30.0, id="cut-short"),
    pytest.param("hold", httpx.ReadTimeout, None, 0.5, id="stalled"),
]


@pytest.mark.parametrize("download", CLIENTS)
@pytest.mark.parametrize(("then", "error", "match", "timeout"), BROKEN)
async def test_a_body_that_breaks_off_fails(
    tmp_path: Path,
    download: Download,
    then: str,
    error: type[Exception],
    match: str | None,
    timeout: float,
) -> None:
    answer = (8 * sync_body.DIRECT, os.urandom(3 * sync_body.DIRECT), then)
    with (
        stub(lambda: answer) as server,
        open(tmp_path / "out", "wb") as f,
        pytest.raises(error, match=match),
    ):
        await read(download, server.url, f, timeout=timeout)
