"""A sandbox's files: streamed writes and reads, listings, and batches."""

from __future__ import annotations

import builtins
import json
import os
import stat
from collections.abc import Iterator

# `builtins.list`: the `list` method shadows the builtin inside the class.
from typing import IO, Any, Literal, overload

import httpcore

from .. import _core, _sync_plan, _tar
from ..errors import ConflictError, NotFoundError
from ..models import ArchiveResult, BatchResult, EntryInfo, SyncResult, WatchEvent, WriteInfo
from . import _body, _io
from .http import HTTP

#: Consecutive failed attempts a resumable upload survives (a daemon restart takes a few).
RESUME_ATTEMPTS = 8

#: The daemon's deepest listing, which reaches every entry a path can name: a shallower one
#: would leave a deep tree's bottom out of a sync (resent on every push, never pulled).
_WHOLE_TREE = 2048

#: The daemon's largest listing page. Each page reads again every directory on its cursor's
#: path: a flat directory of 50,000 files took 1.5 s to list in pages of 1,000, 0.35 s in
#: pages of 10,000.
_PAGE = 10_000


class Files:
    """Files of one sandbox (`sandbox.files`)."""

    def __init__(self, http: HTTP, sandbox_id: str) -> None:
        self._http = http
        self._id = sandbox_id

    def _route(self, sub: str = "") -> str:
        return _core.files_route(self._id, sub)

    def write(
        self,
        path: str,
        data: Any,
        *,
        mode: _core.Mode | None = None,
        mtime: _core.Mtime | None = None,
        parents: bool | None = None,
        overwrite: bool | None = None,
        sha256: str | None = None,
        crc64nvme: str | None = None,
        checksum: _core.Checksum | None = None,
        resumable: bool = False,
        on_progress: _io.Progress | None = None,
    ) -> WriteInfo:
        """Writes `data` (str, bytes, a binary file object, or an iterator of bytes) to
        `path`, streamed and committed atomically: readers see the old file or the new
        one, never half. With `sha256` or `crc64nvme` (hex), nothing is written unless the
        content matches. The answer carries the content's CRC-64/NVME, and its SHA-256 when
        `sha256` was sent or `checksum="sha256"` asked for one.

        With `resumable=True` (str, bytes or a seekable file), the upload goes over tus:
        a dropped connection or a daemon restart is survived by asking the daemon where
        the upload stands and sending the rest from there.

        `on_progress(sent, total)` is called as the bytes go (total None when unknown)."""
        checks = _core.checksum_params(sha256, crc64nvme, checksum)
        if resumable:
            return self._write_resumable(path, data, mode, mtime, overwrite, checks, on_progress)
        params = _core.put_params(path, mode, mtime, parents, overwrite, checks)
        length = _core.known_length(data)
        body = _io.counted(_io.body(data, length), length, on_progress)
        answer = self._http.call(
            "PUT",
            self._route("/content"),
            params=params,
            content=body,
            headers=_core.length_header(length),
        )
        return WriteInfo.from_json(answer)

    @overload
    def read(self, path: str, format: Literal["bytes"] = "bytes") -> bytes: ...
    @overload
    def read(self, path: str, format: Literal["text"]) -> str: ...
    @overload
    def read(self, path: str, format: Literal["stream"]) -> Iterator[bytes]: ...

    def read(self, path: str, format: str = "bytes") -> bytes | str | Iterator[bytes]:
        """A file's content as bytes, as UTF-8 text, or as a stream of chunks (for files
        too large to hold: iterate it to the end or close it)."""
        if format == "stream":
            return self._chunks(path)
        data = b"".join([chunk for chunk in self._chunks(path)])
        if format == "text":
            return data.decode()
        if format != "bytes":
            raise ValueError(f"format {format!r} is not bytes, text or stream")
        return data

    def _chunks(self, path: str, rest: _io.Rest | None = None) -> Iterator[bytes]:
        route = self._route("/content")
        with self._http.stream("GET", route, params={"path": path}) as response:
            for chunk in _body.chunks(response, rest):
                yield chunk

    def read_to(
        self, path: str, fileobj: IO[bytes], *, on_progress: _io.Progress | None = None
    ) -> int:
        """Streams a file into a binary file object; answers the bytes written.
        `on_progress(received, total)` is called as they arrive."""
        size = (self.stat(path)).size if on_progress is not None else None
        total = 0

        def told(written: int) -> None:
            nonlocal total
            total += written
            if on_progress is not None:
                on_progress(total, size)

        def rest(stream: httpcore.NetworkStream, left: int, timeout: float | None) -> bool:
            return _io.copy_rest(stream, fileobj, left, timeout, told)

        for chunk in self._chunks(path, rest):
            _io.write_to(fileobj, chunk)
            told(len(chunk))
        return total

    def list(self, path: str = "/", depth: int = 1) -> builtins.list[EntryInfo]:
        """Every entry under `path`, `depth` levels down, depth first, names sorted."""
        entries: list[EntryInfo] = []
        params = {"path": path, "depth": str(depth), "limit": str(_PAGE)}
        while True:
            page = self._http.call("GET", self._route(), params=params, idempotent=True)
            entries.extend(EntryInfo.from_json(e) for e in page["entries"])
            if not page.get("next_cursor"):
                return entries
            params["cursor"] = page["next_cursor"]

    def stat(self, path: str) -> EntryInfo:
        """One entry (a symlink itself, not its target)."""
        answer = self._http.call(
            "GET", self._route("/stat"), params={"path": path}, idempotent=True
        )
        return EntryInfo.from_json(answer)

    def get_info(self, path: str) -> EntryInfo:
        """The same as `stat`, by E2B's name."""
        return self.stat(path)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
            return True
        except NotFoundError:
            return False

    def make_dir(
        self, path: str, *, mode: _core.Mode | None = None, parents: bool = True
    ) -> EntryInfo:
        """Makes a directory (and its parents); succeeds if it exists."""
        body: dict[str, Any] = {"path": path, "parents": parents}
        if mode is not None:
            body["mode"] = _core.mode_text(mode)
        return EntryInfo.from_json(self._http.call("POST", self._route("/mkdir"), json_body=body))

    def remove(self, path: str, recursive: bool = False) -> None:
        """Removes a file, or a directory (a non-empty one only with `recursive`)."""
        params = {"path": path, "recursive": "true" if recursive else "false"}
        self._http.call("DELETE", self._route(), params=params, idempotent=True)

    def rename(self, src: str, dst: str, *, overwrite: bool = False) -> EntryInfo:
        """Moves `src` to `dst` atomically; an existing `dst` only with `overwrite`."""
        body = {"from": src, "to": dst, "overwrite": overwrite}
        return EntryInfo.from_json(self._http.call("POST", self._route("/move"), json_body=body))

    def write_files(
        self,
        files: builtins.list[dict[str, Any]],
        *,
        parents: bool | None = None,
        overwrite: bool | None = None,
    ) -> BatchResult:
        """Writes many files in one streamed request: each `{"path", "data"}` (plus
        optional `mode`, `mtime`, `sha256`, `crc64nvme`, `checksum`) is committed on its
        own, and one that fails
        gets its own error in the result while the rest go on."""
        parts = []
        for f in files:
            headers = {}
            if f.get("mode") is not None:
                headers["X-Airlock-Mode"] = _core.mode_text(f["mode"])
            if f.get("mtime") is not None:
                headers["X-Airlock-Mtime"] = _core.mtime_text(f["mtime"])
            checks = _core.checksum_params(f.get("sha256"), f.get("crc64nvme"), f.get("checksum"))
            headers |= {f"X-Airlock-{name.capitalize()}": v for name, v in checks.items()}
            data = f["data"].encode() if isinstance(f["data"], str) else f["data"]
            parts.append(("file", (f["path"], data, "application/octet-stream", headers)))
        params = {}
        if parents is not None:
            params["parents"] = "true" if parents else "false"
        if overwrite is not None:
            params["overwrite"] = "true" if overwrite else "false"
        answer = self._http.call("POST", self._route("/batch"), params=params, files=parts)
        return BatchResult.from_json(answer)

    def upload_path(
        self,
        local: str,
        remote: str,
        *,
        exclude: builtins.list[str] | None = None,
        on_progress: _io.Progress | None = None,
    ) -> ArchiveResult:
        """Sends the tree under `local` into the directory `remote` as one tar stream
        (modes, mtimes and symlinks kept), extracted all or nothing. `exclude` globs
        match names or paths relative to `local`."""
        chunks = _io.counted(_io.from_thread(_tar.pack(local, exclude)), None, on_progress)
        answer = self._http.call(
            "PUT",
            self._route("/archive"),
            params={"path": remote},
            content=chunks,
        )
        return ArchiveResult.from_json(answer)

    def download_path(
        self, remote: str, local: str, *, on_progress: _io.Progress | None = None
    ) -> int:
        """Brings the tree under `remote` into `local` as one tar stream, extracted as
        safely as the daemon extracts (nothing lands outside `local`, never through a
        symlink). Answers the entries written."""
        route = self._route("/archive")
        with self._http.stream("GET", route, params={"path": remote}) as response:
            received = _io.counted_stream(response.iter_bytes(), on_progress)
            return _io.extract(received, local)

    def sync(
        self,
        local: str,
        remote: str,
        *,
        delete: bool = False,
        back: bool = False,
        exclude: builtins.list[str] | None = None,
    ) -> SyncResult:
        """Mirrors `local` into the directory `remote` (or, with `back=True`, `remote`
        into `local`): both sides are listed, and only entries whose kind, size, mtime
        or mode differ move, all in one tar stream. With `delete`, what the source side
        does not have is removed from the other. What mirror-mode frameworks call before
        and after each command."""
        theirs = self._remote_sides(remote)
        ours = _local_sides(local, exclude)
        if back:
            todo = _sync_plan.plan(theirs, ours, delete)
            for rel in todo.delete:
                _remove_local(os.path.join(local, rel))
            moved = 0
            if todo.send:
                body = {"path": remote, "paths": todo.send}
                route = self._route("/archive")
                with self._http.stream("POST", route, json_body=body) as response:
                    _io.extract(response.iter_bytes(), local)
                moved = sum(theirs[r].size for r in todo.send)
            return SyncResult(len(todo.send), moved, len(todo.delete))
        todo = _sync_plan.plan(ours, theirs, delete)
        if todo.send:
            self.make_dir(remote)
            chunks = _io.from_thread(_tar.pack_selected(local, todo.send))
            self._http.call("PUT", self._route("/archive"), params={"path": remote}, content=chunks)
        for rel in todo.delete:
            self.remove(f"{remote.rstrip('/')}/{rel}", recursive=True)
        moved = sum(ours[r].size for r in todo.send)
        return SyncResult(len(todo.send), moved, len(todo.delete))

    def _remote_sides(self, remote: str) -> dict[str, _sync_plan.Side]:
        try:
            entries = self.list(remote, depth=_WHOLE_TREE)
        except NotFoundError:
            return {}
        base = remote.rstrip("/") + "/"
        sides = {}
        for e in entries:
            kind = e.type if e.type in ("file", "dir", "symlink") else "other"
            sides[e.path[len(base) :]] = _sync_plan.Side(
                kind, e.size, _sync_plan.rfc3339_seconds(e.mtime), e.mode, e.symlink_target
            )
        return sides

    def watch_dir(self, path: str, *, recursive: bool = True) -> Iterator[WatchEvent]:
        """Changes under `path` as they happen; the first event is `ready`, sent once the
        watch is in place. Stop iterating (or close the iterator) to end the watch."""
        params = {"path": path, "recursive": "true" if recursive else "false"}
        route = self._route("/watch")
        with self._http.stream("GET", route, params=params, timeout=None) as response:
            for line in response.iter_lines():
                if line.strip():
                    yield WatchEvent.from_json(json.loads(line))

    def _write_resumable(
        self,
        path: str,
        data: Any,
        mode: _core.Mode | None,
        mtime: _core.Mtime | None,
        overwrite: bool | None,
        checks: dict[str, str],
        on_progress: _io.Progress | None,
    ) -> WriteInfo:
        length = _core.upload_length(data)
        start = data.tell() if hasattr(data, "tell") else 0
        metadata = _core.tus_metadata(path, mode, mtime, overwrite, checks)
        location = self._http.tus_create(self._route_uploads(), length, metadata)
        offset, failures = 0, 0
        sums: dict[str, str] | None = None
        while offset < length:
            try:
                chunk = _io.body(_core.window(data, start + offset))
                if on_progress is not None:
                    chunk = _io.counted(chunk, length, _from(offset, on_progress))
                offset, committed = self._http.tus_patch(location, offset, chunk)
                sums = committed or sums
                failures = 0
            except _io.TRANSIENT:
                failures += 1
                if failures > RESUME_ATTEMPTS:
                    raise
                _io.sleep(min(0.2 * 2**failures, 5.0))
                try:
                    offset = self._http.tus_offset(location)
                except NotFoundError:
                    # Gone from the daemon's uploads: the last byte was in and the file
                    # was committed before the answer was lost.
                    offset = length
        entry = self.stat(path)
        if entry.size != length:
            raise ConflictError(
                f"{path} holds {entry.size} bytes, not the {length} sent", "conflict"
            )
        if sums is None:
            sums = self._checksums(path)
            if not ("sha256" in checks or checks.get("checksum") == "sha256"):
                sums.pop("sha256", None)
        return WriteInfo(entry=entry, crc64nvme=sums["crc64nvme"], sha256=sums.get("sha256"))

    def _checksums(self, path: str) -> dict[str, str]:
        """A file's checksums, as the daemon computes them for a listing of its directory
        (when the answer that carried them was lost)."""
        parent = path.rsplit("/", 1)[0] or "/"
        params = {"path": parent, "checksum": "true"}
        while True:
            page = self._http.call("GET", self._route(), params=params, idempotent=True)
            for entry in page["entries"]:
                if entry["path"] == path and entry.get("crc64nvme"):
                    return {k: str(entry[k]) for k in ("crc64nvme", "sha256") if entry.get(k)}
            if not page.get("next_cursor"):
                raise NotFoundError(f"{path}: not found", "not_found", 404)
            params["cursor"] = page["next_cursor"]

    def _route_uploads(self) -> str:
        return _core.sandbox_route(self._id, "/uploads")


def _from(base: int, on_progress: _io.Progress) -> _io.Progress:
    """Progress of a resumed chunk, counted from where the upload stood."""
    return lambda sent, total: on_progress(base + sent, total)


def _local_sides(local: str, exclude: builtins.list[str] | None) -> dict[str, _sync_plan.Side]:
    if not os.path.isdir(local):
        return {}
    sides = {}
    for path, rel in _tar.walk(local, exclude):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            sides[rel] = _sync_plan.Side("symlink", target=os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            sides[rel] = _sync_plan.Side("dir")
        elif stat.S_ISREG(info.st_mode):
            mode = stat.S_IMODE(info.st_mode)
            sides[rel] = _sync_plan.Side("file", info.st_size, int(info.st_mtime), mode)
        else:
            sides[rel] = _sync_plan.Side("other")
    return sides


def _remove_local(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        _tar.remove_tree(path)
    elif os.path.lexists(path):
        os.unlink(path)
