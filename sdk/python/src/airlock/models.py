"""What the daemon answers, as plain typed records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EntryInfo:
    """One file, directory or symlink inside a sandbox."""

    name: str
    path: str
    type: str
    size: int
    mode: int
    mtime: str
    uid: int = 0
    gid: int = 0
    symlink_target: str | None = None
    sha256: str | None = None
    crc64nvme: str | None = None

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> EntryInfo:
        return cls(
            name=j["name"],
            path=j["path"],
            type=j["type"],
            size=int(j["size"]),
            mode=int(str(j["mode"]), 8),
            mtime=j["mtime"],
            uid=int(j.get("uid", 0)),
            gid=int(j.get("gid", 0)),
            symlink_target=j.get("symlink_target"),
            sha256=j.get("sha256"),
            crc64nvme=j.get("crc64nvme"),
        )


@dataclass(frozen=True)
class WriteInfo:
    """A file as written: its entry and the checksums of its whole content: always the
    CRC-64/NVME (16 hex digits), the SHA-256 when the write asked for it or sent one."""

    entry: EntryInfo
    crc64nvme: str
    sha256: str | None = None

    @property
    def path(self) -> str:
        return self.entry.path

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> WriteInfo:
        return cls(entry=EntryInfo.from_json(j), crc64nvme=j["crc64nvme"], sha256=j.get("sha256"))


@dataclass(frozen=True)
class BatchItem:
    """One file of a batch: written (`result`) or not (`error_code`, `error`)."""

    path: str
    result: WriteInfo | None = None
    error_code: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass(frozen=True)
class BatchResult:
    """Per-file results of a batch, in order."""

    written: int
    failed: int
    results: list[BatchItem] = field(default_factory=list)

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> BatchResult:
        items = []
        for r in j["results"]:
            err = r.get("error") or {}
            items.append(
                BatchItem(
                    path=r["path"],
                    result=WriteInfo.from_json(r["result"]) if r.get("result") else None,
                    error_code=err.get("code"),
                    error=err.get("message"),
                )
            )
        return cls(written=int(j["written"]), failed=int(j["failed"]), results=items)


@dataclass(frozen=True)
class SandboxInfo:
    """A sandbox as the daemon shows it."""

    sandbox_id: str
    template: str
    state: str
    env: dict[str, str]
    labels: dict[str, str]
    limits: dict[str, Any]
    created_at: str
    started_at: str | None = None
    expires_at: str | None = None

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> SandboxInfo:
        return cls(
            sandbox_id=j["id"],
            template=j["template"],
            state=j["state"],
            env=dict(j.get("env", {})),
            labels=dict(j.get("labels", {})),
            limits=dict(j.get("limits", {})),
            created_at=j["created_at"],
            started_at=j.get("started_at"),
            expires_at=j.get("expires_at"),
        )


@dataclass(frozen=True)
class CommandResult:
    """A finished command: its output as text (and exact bytes) and its exit code."""

    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes
    stderr_bytes: bytes
    timed_out: bool = False
    truncated: bool = False


@dataclass(frozen=True)
class ArchiveResult:
    """What an extraction made."""

    path: str
    entries: int
    files: int
    dirs: int
    symlinks: int
    bytes: int
    skipped: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> ArchiveResult:
        return cls(
            path=j["path"],
            entries=int(j["entries"]),
            files=int(j["files"]),
            dirs=int(j["dirs"]),
            symlinks=int(j["symlinks"]),
            bytes=int(j["bytes"]),
            skipped=list(j.get("skipped", [])),
        )


@dataclass(frozen=True)
class WatchEvent:
    """One change under a watched directory: `ready` first, then `create`, `write`,
    `remove`, `rename` (with `from_path`), `chmod`, `overflow` (events were lost: rescan)
    or `error`. New kinds may appear."""

    type: str
    path: str
    from_path: str | None = None
    is_dir: bool = False
    message: str | None = None

    @classmethod
    def from_json(cls, j: dict[str, Any]) -> WatchEvent:
        return cls(
            type=j["type"],
            path=j.get("path", ""),
            from_path=j.get("from"),
            is_dir=bool(j.get("dir")),
            message=j.get("message"),
        )


@dataclass(frozen=True)
class SyncResult:
    """What a sync moved: entries sent, their bytes, and entries deleted."""

    sent: int
    bytes: int
    deleted: int
