"""Mirror mode's decisions alone, without a daemon: what a sync sends and deletes."""

from __future__ import annotations

from airlock._sync_plan import Side, plan, topmost


def test_only_the_topmost_of_what_is_gone_is_deleted() -> None:
    # As strings, "a-c" and "a.txt" sort between "a" and "a/b"; by components they do
    # not, and "a/b" goes with "a".
    gone = ["a.txt", "a/b", "a-c/d", "a", "a-c", "b/c/d", "b/e", "a/b/c"]
    assert sorted(topmost(gone)) == ["a", "a-c", "a.txt", "b/c/d", "b/e"]
    assert topmost([]) == []


def test_a_plan_sends_what_differs_and_deletes_what_the_source_lacks() -> None:
    source = {"src": Side("dir"), "src/new": Side("file", 3, 10, 0o644)}
    dest = {
        "src": Side("dir"),
        "src/old": Side("file", 3, 10, 0o644),
        "build": Side("dir"),
        "build/x": Side("file", 1, 1, 0o644),
        "build/y/z": Side("file", 1, 1, 0o644),
    }
    kept = plan(source, dest, delete=False)
    assert (kept.send, kept.delete) == (["src/new"], [])
    pruned = plan(source, dest, delete=True)
    assert sorted(pruned.delete) == ["build", "src/old"]


def test_thousands_of_scattered_deletions_are_planned_whole() -> None:
    # Each deleted file in a directory of its own, which stays: none is inside another.
    source = {f"d{i}": Side("dir") for i in range(20_000)}
    dest = dict(source) | {f"d{i}/f": Side("file", 1, 0, 0o644) for i in range(20_000)}
    assert len(plan(source, dest, delete=True).delete) == 20_000
