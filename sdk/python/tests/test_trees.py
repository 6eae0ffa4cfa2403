"""Trees up and down as tar streams (sync and async), watching, and the local
extractor against hostile archives: nothing may land outside the target."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from airlock import AsyncSandbox, Sandbox, _tar
from airlock._sync import _io as sync_io
from airlock._tar import UnsafeArchiveError, extract, make_staging, remove_tree

from .conftest import Daemon


def make_tree(root: Path) -> None:
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "mod.py").write_text("print('hi')\n")
    (root / "run.sh").write_bytes(b"#!/bin/sh\necho run\n")
    os.chmod(root / "run.sh", 0o755)
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4000)
    (root / "empty").mkdir()
    os.symlink("src/pkg/mod.py", root / "link")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "huge.js").write_text("x")
    os.utime(root / "run.sh", (1_600_000_000, 1_600_000_000))


def same_tree(a: Path, b: Path) -> None:
    names_a = sorted(str(p.relative_to(a)) for p in a.rglob("*"))
    names_b = sorted(str(p.relative_to(b)) for p in b.rglob("*"))
    assert names_a == names_b
    for rel in names_a:
        pa, pb = a / rel, b / rel
        assert pa.is_symlink() == pb.is_symlink(), rel
        if pa.is_symlink():
            assert os.readlink(pa) == os.readlink(pb)
        elif pa.is_file():
            assert pa.read_bytes() == pb.read_bytes(), rel
            assert os.stat(pa).st_mode == os.stat(pb).st_mode, rel


def test_a_tree_goes_up_and_comes_back_the_same(env: Daemon, tmp_path: Path) -> None:
    local = tmp_path / "project"
    local.mkdir()
    make_tree(local)
    with Sandbox.create() as sb:
        made = sb.files.upload_path(str(local), "/workspace/project", exclude=["node_modules"])
        assert made.files == 3 and made.symlinks == 1
        run = sb.commands.run(
            "sh /workspace/project/run.sh && stat -c %Y /workspace/project/run.sh"
        )
        assert run.stdout == "run\n1600000000\n"
        back = tmp_path / "back"
        sb.files.download_path("/workspace/project", str(back))
    expected = tmp_path / "expected"
    expected.mkdir()
    make_tree(expected)
    shutil.rmtree(expected / "node_modules")
    same_tree(expected, back)
    assert os.stat(back / "run.sh").st_mtime == 1_600_000_000


async def test_trees_and_watch_async(env: Daemon, tmp_path: Path) -> None:
    local = tmp_path / "project"
    local.mkdir()
    make_tree(local)
    async with await AsyncSandbox.create() as sb:
        await sb.files.make_dir("/workspace/w")
        events = sb.files.watch_dir("/workspace/w")
        first = await events.__anext__()
        assert first.type == "ready"
        await sb.files.upload_path(str(local), "/workspace/w/p")
        seen = await events.__anext__()
        assert seen.path.startswith("/workspace/w/p")
        await events.aclose()  # type: ignore[attr-defined]
        back = tmp_path / "back"
        count = await sb.files.download_path("/workspace/w/p", str(back))
        assert count >= 8
        same_tree(local, back)


def test_watch_sync(env: Daemon) -> None:
    with Sandbox.create() as sb:
        sb.files.make_dir("/workspace/w")
        events = sb.files.watch_dir("/workspace/w", recursive=False)
        assert next(events).type == "ready"
        sb.files.write("/workspace/w/f", "x")
        # The daemon writes through a temporary name and renames it into place.
        seen = next(e for e in events if e.path == "/workspace/w/f")
        assert seen.type in ("create", "rename")
        events.close()  # type: ignore[attr-defined]


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info


HOSTILE = {
    "dot-dot": tar_of((entry("../escaped"), b"pwned")),
    "absolute": tar_of((entry("/tmp/airlock-sdk-absolute"), b"pwned")),
    "through its own symlink": tar_of(
        (entry("link", tarfile.SYMTYPE, "{outside}"), b""), (entry("link/pwned"), b"pwned")
    ),
    "hard link out": tar_of((entry("hard", tarfile.LNKTYPE, "../outside/secret"), b"")),
    "hard link to nothing of its own": tar_of((entry("hard", tarfile.LNKTYPE, "etc/passwd"), b"")),
    "dot-dot behind dots": tar_of((entry("a/./.././../escaped"), b"pwned")),
    "absolute with two slashes": tar_of((entry("//tmp/airlock-sdk-absolute"), b"pwned")),
    "hard link out behind dots": tar_of(
        (entry("hard", tarfile.LNKTYPE, "./x/../../outside/secret"), b"")
    ),
    "through its own file": tar_of((entry("f"), b"file"), (entry("f/pwned"), b"pwned")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_archives_never_write_outside(tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host-secret")
    target = tmp_path / "target"
    data = HOSTILE[name].replace(b"{outside}", str(outside).encode())
    if b"{outside}" in HOSTILE[name]:
        # The PAX header carries the real path; rebuild with the right link target.
        data = tar_of(
            (entry("link", tarfile.SYMTYPE, str(outside)), b""), (entry("link/pwned"), b"pwned")
        )
    with pytest.raises((UnsafeArchiveError, tarfile.TarError)):
        sync_io.extract(iter([data]), str(target))
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]
    assert (outside / "secret").read_text() == "host-secret"
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/airlock-sdk-absolute").exists()


def test_a_symlink_already_in_the_target_is_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    os.symlink(outside, target / "dir")
    with pytest.raises(UnsafeArchiveError):
        extract(io.BytesIO(tar_of((entry("dir/pwned"), b"pwned"))), target)
    assert list(outside.iterdir()) == []
    # A file named like the planted link replaces the link, never writes through it.
    os.symlink(outside / "victim", target / "file")
    extract(io.BytesIO(tar_of((entry("file"), b"safe"))), target)
    assert (target / "file").read_bytes() == b"safe" and not (outside / "victim").exists()


async def test_the_async_extractor_refuses_too(tmp_path: Path) -> None:
    from airlock._async import _io as async_io

    async def chunks() -> AsyncIterator[bytes]:
        yield HOSTILE["dot-dot"]

    with pytest.raises(UnsafeArchiveError):
        await async_io.extract(chunks(), str(tmp_path / "t"))
    assert not (tmp_path / "escaped").exists()


def test_a_download_cut_off_midway_leaves_the_destination_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "dir").mkdir(parents=True)
    (target / "kept").write_bytes(b"old content")
    whole = tar_of(
        (entry("first"), b"1" * 600),
        (entry("dir/inside"), b"2" * 600),
        (entry("kept"), b"n" * 5000),
    )
    # Cut inside the last file's content: two whole entries and part of a third arrived.
    cut = whole.index(b"n" * 512) + 1024
    with pytest.raises(tarfile.TarError):
        sync_io.extract(iter([whole[:cut]]), str(target))
    assert (target / "kept").read_bytes() == b"old content"
    assert sorted(p.name for p in target.iterdir()) == ["dir", "kept"], "nothing new, no staging"
    assert list((target / "dir").iterdir()) == []


def test_an_archive_refused_midway_leaves_nothing_of_its_earlier_entries(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(UnsafeArchiveError):
        extract(io.BytesIO(tar_of((entry("fine"), b"ok"), (entry("../escaped"), b"x"))), target)
    assert list(target.iterdir()) == []


def test_a_tree_merges_into_what_is_there(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "a").mkdir(parents=True)
    (target / "a" / "old.txt").write_bytes(b"old")
    (target / "a" / "replaced.txt").write_bytes(b"before")
    (target / "was-a-file").write_bytes(b"file")
    os.symlink(tmp_path, target / "was-a-link")
    a = entry("a", tarfile.DIRTYPE)
    a.mode, a.mtime = 0o750, 1_000_000_000
    members = [
        (a, b""),
        (entry("a/new.txt"), b"new"),
        (entry("a/replaced.txt"), b"after"),
        (entry("was-a-file", tarfile.DIRTYPE), b""),
        (entry("was-a-file/x"), b"x"),
        (entry("was-a-link", tarfile.DIRTYPE), b""),
        (entry("was-a-link/y"), b"y"),
    ]
    assert extract(io.BytesIO(tar_of(*members)), target) == len(members)
    assert (target / "a" / "old.txt").read_bytes() == b"old"
    assert (target / "a" / "new.txt").read_bytes() == b"new"
    assert (target / "a" / "replaced.txt").read_bytes() == b"after"
    assert stat.S_IMODE(os.stat(target / "a").st_mode) == 0o750
    assert int(os.stat(target / "a").st_mtime) == 1_000_000_000
    assert (target / "was-a-file" / "x").read_bytes() == b"x"
    assert not (target / "was-a-link").is_symlink()
    assert (target / "was-a-link" / "y").read_bytes() == b"y"
    assert not (tmp_path / "y").exists(), "the link was replaced, never followed"
    assert sorted(p.name for p in target.iterdir()) == ["a", "was-a-file", "was-a-link"]


def test_a_file_where_a_directory_is_refused_before_anything_moves(tmp_path: Path) -> None:
    target = tmp_path / "target"
    (target / "d").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        extract(io.BytesIO(tar_of((entry("new"), b"n"), (entry("d"), b"file"))), target)
    assert sorted(p.name for p in target.iterdir()) == ["d"]


async def test_an_async_download_broken_between_entries_leaves_the_destination_as_it_was(
    tmp_path: Path,
) -> None:
    from airlock._async import _io as async_io

    target = tmp_path / "target"
    target.mkdir()
    whole = tar_of((entry("first"), b"1" * 600), (entry("second"), b"2" * 600))
    # The first entry whole (header and two blocks of content), then the connection breaks.
    first = whole[: 3 * tarfile.BLOCKSIZE]

    async def chunks() -> AsyncIterator[bytes]:
        yield first
        raise OSError("the connection broke")

    with pytest.raises(OSError, match="connection broke"):
        await async_io.extract(chunks(), str(target))
    assert list(target.iterdir()) == [], "nothing of a broken download is merged"


def test_trees_deeper_than_pythons_recursion_limit_go_both_ways(
    env: Daemon, tmp_path: Path
) -> None:
    """A sandbox makes a chain of thousands of directories in seconds; Python 3.11's own
    `os.walk` and `shutil.rmtree` stop near a thousand levels. 1,500 one-letter levels
    stay under PATH_MAX, so every side can name them."""
    depth = 1500
    local = tmp_path / "chain"
    back = tmp_path / "back"
    try:  # removed here even on failure: pytest's own cleanup would hit the limit
        local.mkdir()
        deepest = local
        for _ in range(depth):  # `mkdir(parents=True)` recurses once a level too
            deepest = deepest / "d"
            deepest.mkdir()
        (deepest / "f").write_bytes(b"bottom")
        with Sandbox.create() as sb:
            for _ in range(2):  # the second merges every level in the daemon
                made = sb.files.upload_path(str(local), "/workspace/chain")
                assert made.dirs >= depth and made.files == 1
            sb.files.download_path("/workspace/chain", str(back))
            # Again, into the copy now there: every level merges.
            sb.files.write("/workspace/chain/" + "d/" * depth + "f", b"changed")
            sb.files.download_path("/workspace/chain", str(back))
        assert back.joinpath(*["d"] * depth, "f").read_bytes() == b"changed"
        assert [p.name for p in back.iterdir()] == ["d"], "no staging left behind"
    finally:
        for tree in (local, back):
            if tree.exists():
                remove_tree(tree)
    assert not local.exists()


def test_a_stale_staging_directory_in_an_uploaded_folder_is_skipped(
    env: Daemon, tmp_path: Path
) -> None:
    """A download killed midway leaves its staging directory in the local folder; the
    next upload of that folder sends it, and the daemon skips it, saying so."""
    local = tmp_path / "project"
    local.mkdir()
    stale = make_staging(local)  # named as a real download names it
    (stale / "half").write_bytes(b"x")
    (local / "kept").write_bytes(b"kept")
    with Sandbox.create() as sb:
        made = sb.files.upload_path(str(local), "/workspace/project")
        assert made.files == 1
        skipped = sorted(s["path"] for s in made.skipped)
        assert skipped == [
            f"/workspace/project/{stale.name}",
            f"/workspace/project/{stale.name}/half",
        ]
        run = sb.commands.run("ls -A /workspace/project")
        assert run.stdout == "kept\n"


def test_a_packed_tree_comes_in_runs_of_at_least_gather_bytes(tmp_path: Path) -> None:
    # 300 small files and one big one: the small files' headers, bytes and padding are
    # joined into runs of at least GATHER bytes; a shorter run is the last or is cut
    # short by a piece that large, a big file's chunk, which passes as read. The stream
    # is still the same tar.
    for n in range(300):
        (tmp_path / f"f{n}").write_bytes(os.urandom(5000))
    (tmp_path / "big").write_bytes(os.urandom(3 * _tar.CHUNK + 17))
    pieces = list(_tar.pack(tmp_path))
    assert len(pieces) < 10
    for piece, after in zip(pieces, pieces[1:]):
        assert len(piece) >= _tar.GATHER or len(after) >= _tar.GATHER
    with tarfile.open(fileobj=io.BytesIO(b"".join(pieces))) as archive:
        names = {member.name for member in archive.getmembers()}
        big = archive.extractfile("big")
        assert big is not None and big.read() == (tmp_path / "big").read_bytes()
    assert names == {"big"} | {f"f{n}" for n in range(300)}


def test_gathering_keeps_order_and_passes_large_pieces_untouched() -> None:
    large = os.urandom(_tar.GATHER)
    small = [bytes([n]) * 1000 for n in range(5)]
    pieces = [small[0], small[1], large, small[2], small[3], small[4]]
    gathered = list(_tar._gathered(iter(pieces)))
    assert gathered == [small[0] + small[1], large, small[2] + small[3] + small[4]]
    assert gathered[1] is large
    assert list(_tar._gathered(iter([]))) == []


def _tarfile_header(
    name: str, kind: bytes, mode: int, mtime: int, size: int = 0, link: str = ""
) -> bytes:
    member = tarfile.TarInfo(name)
    member.type, member.mode, member.mtime, member.size = kind, mode, mtime, size
    member.linkname = link
    return member.tobuf(tarfile.PAX_FORMAT)


@pytest.mark.parametrize(
    ("name", "kind", "mode", "mtime", "size", "link"),
    [
        ("f", tarfile.REGTYPE, 0o644, 1_700_000_000, 4096, ""),
        ("run.sh", tarfile.REGTYPE, 0o4755, 0, 0, ""),
        ("d", tarfile.DIRTYPE, 0o755, 1_600_000_000, 0, ""),
        ("d/", tarfile.DIRTYPE, 0o700, 1, 0, ""),
        ("a/b/link", tarfile.SYMTYPE, 0o777, 5, 0, "../x y/z"),
        ("n" * 100, tarfile.REGTYPE, 0o600, 7, 1, ""),
        ("d" * 99, tarfile.DIRTYPE, 0o755, 7, 0, ""),  # 100 with its slash
        ("l", tarfile.SYMTYPE, 0o777, 7, 0, "t" * 100),
        ("big", tarfile.REGTYPE, 0o644, 8**11 - 1, 8**11 - 1, ""),
        # What a plain header cannot hold: tarfile's extended header, through the same call.
        ("n" * 101, tarfile.REGTYPE, 0o644, 7, 1, ""),
        ("d" * 100, tarfile.DIRTYPE, 0o755, 7, 0, ""),
        ("l", tarfile.SYMTYPE, 0o777, 7, 0, "t" * 101),
        ("café/naïve.txt", tarfile.REGTYPE, 0o644, 7, 3, ""),
        ("l", tarfile.SYMTYPE, 0o777, 7, 0, "→"),
        ("huge", tarfile.REGTYPE, 0o644, 7, 8**11, ""),
        ("future", tarfile.REGTYPE, 0o644, 8**11, 0, ""),
        ("past", tarfile.REGTYPE, 0o644, -1, 0, ""),
        ("sp ace\tand\nnewline", tarfile.REGTYPE, 0o644, 7, 0, ""),
    ],
)
def test_headers_are_byte_for_byte_what_tarfile_makes(
    name: str, kind: bytes, mode: int, mtime: int, size: int, link: str
) -> None:
    made = _tar.header(name, kind, mode, mtime, size=size, link=link)
    assert made == _tarfile_header(name, kind, mode, mtime, size, link)
    # And tarfile reads back what was meant.
    padding = b"\0" * (-size % tarfile.BLOCKSIZE) if size < 1 << 20 else b""
    if size < 1 << 20:
        stream = made + b"x" * size + padding + b"\0" * 1024
        with tarfile.open(fileobj=io.BytesIO(stream)) as archive:
            member = archive.next()
            assert member is not None
            assert member.name == name.rstrip("/")
            assert (member.mode, member.mtime, member.size) == (mode, mtime, size)
            assert member.linkname == link


def test_a_packed_tree_is_what_tarfile_would_have_packed(tmp_path: Path) -> None:
    """Names, kinds, modes, mtimes, links and contents, for a tree with the odd cases:
    a long name, a non-ASCII one, a link to a directory, an empty file."""
    make_tree(tmp_path)
    (tmp_path / ("long" * 30)).write_bytes(b"long")
    (tmp_path / "é").mkdir()
    (tmp_path / "é" / "ü.txt").write_bytes(b"")
    os.symlink("src", tmp_path / "to-dir")
    with tarfile.open(fileobj=io.BytesIO(b"".join(_tar.pack(tmp_path)))) as archive:
        members = {m.name: m for m in archive.getmembers()}
        contents = {
            name: f.read()
            for name, m in members.items()
            if m.isfile() and (f := archive.extractfile(m)) is not None
        }
    expected = {}
    for path in sorted(tmp_path.rglob("*")):
        rel = path.relative_to(tmp_path).as_posix()
        if rel.startswith("to-dir/"):
            continue
        expected[rel] = os.lstat(path)
    assert sorted(members) == sorted(expected)
    for rel, info in expected.items():
        member = members[rel]
        assert member.mode == stat.S_IMODE(info.st_mode), rel
        assert member.mtime == int(info.st_mtime), rel
        if stat.S_ISLNK(info.st_mode):
            assert member.issym() and member.linkname == os.readlink(tmp_path / rel)
        elif stat.S_ISDIR(info.st_mode):
            assert member.isdir(), rel
        else:
            assert contents[rel] == (tmp_path / rel).read_bytes(), rel


def test_empty_and_dot_parts_are_dropped_and_dot_describes_the_target(tmp_path: Path) -> None:
    """`./a//b/./c` lands at `a/b/c`; an entry for `./` gives the target its mode and
    mtime; a hard link names its file the same loose way."""
    top = entry("./", tarfile.DIRTYPE)
    top.mode, top.mtime = 0o751, 1_100_000_000
    members = [
        (top, b""),
        (entry("./a//b/./c"), b"deep"),
        (entry("a/b/hard", tarfile.LNKTYPE, "a//./b/c"), b""),
    ]
    target = tmp_path / "target"
    assert extract(io.BytesIO(tar_of(*members)), target) == 3
    assert (target / "a" / "b" / "c").read_bytes() == b"deep"
    assert os.stat(target / "a" / "b" / "hard").st_ino == os.stat(target / "a" / "b" / "c").st_ino
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o751
    assert int(os.stat(target).st_mtime) == 1_100_000_000
    assert sorted(p.name for p in target.iterdir()) == ["a"], "no staging left behind"
