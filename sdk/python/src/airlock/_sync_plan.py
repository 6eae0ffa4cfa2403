"""Mirror mode's decisions, with no I/O: given both sides' listings, which entries to
send and which to delete. An entry is the same on both sides when it is the same kind
and, for a file, the same size, mtime (whole seconds) and mode; for a symlink, the same
target."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Side:
    """One entry as either side sees it."""

    kind: str  # "file", "dir" or "symlink" ("other" for what a mirror never carries)
    size: int = 0
    mtime: int = 0
    mode: int = 0
    target: str | None = None


@dataclass
class Plan:
    """What a sync will do: entries to send (relative paths, parents first) and to
    delete on the receiving side (children first)."""

    send: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)


def rfc3339_seconds(text: str) -> int:
    """Whole epoch seconds of the daemon's RFC 3339 times (UTC, nanoseconds)."""
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def same(source: Side, dest: Side) -> bool:
    if source.kind != dest.kind:
        return False
    if source.kind == "symlink":
        return source.target == dest.target
    if source.kind == "file":
        return (source.size, source.mtime, source.mode & 0o7777) == (
            dest.size,
            dest.mtime,
            dest.mode & 0o7777,
        )
    return True


def plan(source: dict[str, Side], dest: dict[str, Side], delete: bool) -> Plan:
    """What to send from `source` and, with `delete`, remove from `dest`."""
    out = Plan()
    for rel in sorted(source):
        entry = source[rel]
        if entry.kind == "other":
            continue
        there = dest.get(rel)
        if there is None or not same(entry, there):
            out.send.append(rel)
    if delete:
        gone = [rel for rel in dest if rel not in source]
        # Children first, and nothing below a directory that is itself removed.
        gone.sort(key=lambda r: r.count("/"))
        kept: list[str] = []
        for rel in gone:
            if not any(rel.startswith(parent + "/") for parent in kept):
                kept.append(rel)
        out.delete = sorted(kept, key=lambda r: -r.count("/"))
    return out
