"""Mirror mode's decisions, with no I/O: given both sides' listings, which entries to
send and which to delete. An entry is the same on both sides when it is the same kind
and, for a file, the same size, mtime (whole seconds) and mode; for a symlink, the same
target."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable
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
    delete on the receiving side (none inside another, which goes with it)."""

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
        out.delete = topmost(rel for rel in dest if rel not in source)
    return out


def topmost(paths: Iterable[str]) -> list[str]:
    """The paths with no ancestor among them: removing those removes the rest.

    Sorted by their components, a directory's descendants follow it with nothing between,
    so one pass comparing each path with the last one kept is enough. (Checking every
    path against every kept one took 42 s for 20,000 files deleted from as many
    directories.)"""
    kept: list[str] = []
    for rel in sorted(paths, key=lambda r: r.split("/")):
        if not kept or not rel.startswith(kept[-1] + "/"):
            kept.append(rel)
    return kept
