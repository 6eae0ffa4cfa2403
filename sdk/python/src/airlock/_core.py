"""The SDK's sans-IO core: how each call becomes a request and each answer a result,
shared by the async client and the sync client generated from it. Nothing here does
I/O."""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any, Literal, Union
from urllib.parse import quote

from .errors import AirlockError, error_for
from .models import CommandResult

Mode = Union[int, str]
Mtime = Union[int, float, str, datetime.datetime]

#: Seconds between looks at a sandbox the daemon answered as pending.
PENDING_POLL = 0.1


def sandbox_route(sandbox_id: str, sub: str = "") -> str:
    return f"/v1/sandboxes/{quote(sandbox_id, safe='')}{sub}"


def files_route(sandbox_id: str, sub: str = "") -> str:
    return sandbox_route(sandbox_id, "/files" + sub)


def mode_text(mode: Mode) -> str:
    """Octal text, as the daemon reads modes: 0o644 and "644" are the same."""
    return mode if isinstance(mode, str) else format(mode, "o")


def mtime_text(mtime: Mtime) -> str:
    """Epoch seconds or RFC 3339, as the daemon reads times."""
    if isinstance(mtime, datetime.datetime):
        if mtime.tzinfo is None:
            mtime = mtime.replace(tzinfo=datetime.timezone.utc)
        return mtime.isoformat()
    return str(mtime)


def put_params(
    path: str,
    mode: Mode | None,
    mtime: Mtime | None,
    parents: bool | None,
    overwrite: bool | None,
    checks: dict[str, str],
) -> dict[str, str]:
    """A whole-file write's query; the daemon fills what is left out."""
    params = {"path": path}
    if mode is not None:
        params["mode"] = mode_text(mode)
    if mtime is not None:
        params["mtime"] = mtime_text(mtime)
    if parents is not None:
        params["parents"] = _flag(parents)
    if overwrite is not None:
        params["overwrite"] = _flag(overwrite)
    return params | checks


Checksum = Literal["crc64nvme", "sha256"]


def checksum_params(
    sha256: str | None, crc64nvme: str | None, checksum: Checksum | None
) -> dict[str, str]:
    """A write's checksum options by the daemon's names: the digests to verify, and the
    extra one to report (the CRC-64/NVME is always reported)."""
    given = {"sha256": sha256, "crc64nvme": crc64nvme, "checksum": checksum}
    return {k: v for k, v in given.items() if v is not None}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def create_body(
    template: str | None,
    env: dict[str, str] | None,
    files: list[dict[str, Any]] | None,
    limits: dict[str, Any] | None,
    ttl: int | None,
    labels: dict[str, str] | None,
    start: bool | None,
) -> dict[str, Any]:
    """The body of a creation. Injected files take `data` as str or bytes."""
    body: dict[str, Any] = {}
    if template is not None:
        body["template"] = template
    if env:
        body["env"] = env
    if limits:
        body["limits"] = limits
    if labels:
        body["labels"] = labels
    if ttl is not None:
        body["ttl_secs"] = ttl
    if start is not None:
        body["start"] = start
    if files:
        body["files"] = [_injected(f) for f in files]
    return body


def _injected(f: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f["path"]}
    data = f.get("data", f.get("content", b""))
    if isinstance(data, str):
        out["content"] = data
    else:
        out["content_b64"] = base64.b64encode(bytes(data)).decode()
    if f.get("mode") is not None:
        out["mode"] = mode_text(f["mode"])
    if f.get("readonly"):
        out["readonly"] = True
    return out


def command_body(
    cmd: str | list[str],
    env: dict[str, str] | None,
    cwd: str | None,
    timeout: float | None,
    stdin: str | bytes | None,
) -> dict[str, Any]:
    """A command: a string runs under /bin/sh -c, a list is argv."""
    body: dict[str, Any] = {"shell": cmd} if isinstance(cmd, str) else {"cmd": list(cmd)}
    if env:
        body["env"] = env
    if cwd is not None:
        body["cwd"] = cwd
    if timeout is not None:
        body["timeout_ms"] = int(timeout * 1000)
    if isinstance(stdin, str):
        body["stdin"] = stdin
    elif stdin is not None:
        body["stdin_b64"] = base64.b64encode(stdin).decode()
    return body


def exact(text: str, encoded: str | None) -> bytes:
    """The exact bytes of a text field that may have a base64 twin."""
    return base64.b64decode(encoded) if encoded else text.encode()


def command_result(j: dict[str, Any]) -> CommandResult:
    out = exact(j.get("stdout", ""), j.get("stdout_b64"))
    err = exact(j.get("stderr", ""), j.get("stderr_b64"))
    return CommandResult(
        exit_code=int(j["exit_code"]),
        stdout=j.get("stdout", ""),
        stderr=j.get("stderr", ""),
        stdout_bytes=out,
        stderr_bytes=err,
        timed_out=bool(j.get("timed_out")),
        truncated=bool(j.get("truncated")),
    )


def event_bytes(event: dict[str, Any]) -> bytes:
    """The bytes of one streamed stdout or stderr event."""
    return exact(event.get("data") or "", event.get("data_b64"))


def failure(status: int, body: bytes) -> AirlockError:
    """The exception for an error answer, by the daemon's code."""
    try:
        detail = json.loads(body)["error"]
        return error_for(str(detail["code"]), str(detail["message"]), status)
    except (ValueError, KeyError, TypeError):
        text = body.decode(errors="replace").strip()[:500]
        return AirlockError(f"HTTP {status}: {text}", "internal", status)


def tus_metadata(
    path: str,
    mode: Mode | None,
    mtime: Mtime | None,
    overwrite: bool | None,
    checks: dict[str, str],
) -> str:
    """tus `Upload-Metadata`: comma-separated `key base64(value)` pairs."""
    pairs = {"path": path}
    if mode is not None:
        pairs["mode"] = mode_text(mode)
    if mtime is not None:
        pairs["mtime"] = mtime_text(mtime)
    if overwrite is not None:
        pairs["overwrite"] = _flag(overwrite)
    pairs |= checks
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def upload_length(data: object) -> int:
    """How many bytes a resumable upload will carry: text, bytes, or a seekable file
    (from its current position)."""
    if isinstance(data, str):
        return len(data.encode())
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    seek = getattr(data, "seek", None)
    tell = getattr(data, "tell", None)
    if seek is not None and tell is not None:
        start = int(tell())
        end = int(seek(0, 2))
        seek(start)
        return end - start
    raise ValueError("a resumable upload needs its length: give str, bytes or a seekable file")


def known_length(data: object) -> int | None:
    """A body's length when it can be known without reading it."""
    try:
        return upload_length(data)
    except (ValueError, OSError):
        return None


def length_header(length: int | None) -> dict[str, str] | None:
    """`Content-Length` for a body whose length is known. Without it the body goes
    chunked, and framing each chunk made the HTTP layer copy it whole: a 1 GiB upload
    spent half its time in those copies. A file that shrinks while it is sent now fails
    the upload instead of storing a short file."""
    return None if length is None else {"content-length": str(length)}


def check_file_length(sent: int, length: int | None, *, ended: bool) -> None:
    """Refuses a file that gives other than the `length` its size promised (it changed
    while it was sent): raised before the daemon sees a byte too many or the end of a
    short body, so nothing is written and the error says why."""
    too_many = length is not None and sent > length
    too_few = length is not None and ended and sent < length
    if not (too_many or too_few):
        return
    gave = f"{sent} bytes" if ended else f"more than {length}"
    raise ValueError(
        f"the file changed while it was sent: its size said {length} bytes, it gave {gave}"
    )


def window(data: object, position: int) -> object:
    """What is left of a resumable upload's `data` from `position`: text and bytes are
    sliced, a file is seeked."""
    if isinstance(data, str):
        return data.encode()[position:]
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data[position:])
    data.seek(position)  # type: ignore[attr-defined]
    return data
