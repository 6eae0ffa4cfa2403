"""The sync client end to end against a real daemon: every method, errors, binary
safety."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from airlock import (
    AuthenticationError,
    BadRequestError,
    CommandExitError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Sandbox,
)

from .conftest import Daemon
from .crc import crc64nvme

BINARY = bytes(range(256)) * 1000


def test_lifecycle_connect_list_and_the_context_manager(env: Daemon) -> None:
    with Sandbox.create(labels={"suite": "sync"}, env={"GREETING": "hi"}) as sb:
        assert sb.info.state == "running"
        again = Sandbox.connect(sb.sandbox_id)
        assert again.get_info().labels == {"suite": "sync"}
        again.close()
        assert sb.sandbox_id in [s.sandbox_id for s in Sandbox.list()]
        assert sb.commands.run("echo $GREETING").stdout == "hi\n"
        kept = sb.sandbox_id
    with pytest.raises(NotFoundError):
        Sandbox.connect(kept)


def test_files_every_method(env: Daemon) -> None:
    with Sandbox.create() as sb:
        f = sb.files
        written = f.write("/workspace/a.txt", "alpha", mode=0o600, mtime=1_600_000_000)
        assert written.crc64nvme == crc64nvme(b"alpha") and written.sha256 is None
        assert written.entry.mode == 0o600
        again = f.write(
            "/workspace/a.txt", "alpha", mode=0o600, mtime=1_600_000_000, checksum="sha256"
        )
        assert again.sha256 == hashlib.sha256(b"alpha").hexdigest()
        with pytest.raises(BadRequestError, match="crc64nvme"):
            f.write("/workspace/a.txt", "beta", crc64nvme=crc64nvme(b"alpha"))
        assert f.read("/workspace/a.txt") == b"alpha"
        assert f.read("/workspace/a.txt") == b"alpha"
        assert f.read("/workspace/a.txt", format="text") == "alpha"
        assert b"".join(f.read("/workspace/a.txt", format="stream")) == b"alpha"
        # Binary is never text: bytes, a file object and an iterator all arrive exact.
        f.write("/workspace/bin", BINARY)
        f.write("/workspace/from-file", io.BytesIO(BINARY))
        f.write("/workspace/from-iter", (BINARY[i : i + 999] for i in range(0, len(BINARY), 999)))
        for name in ("bin", "from-file", "from-iter"):
            assert f.read(f"/workspace/{name}") == BINARY
        out = io.BytesIO()
        assert f.read_to("/workspace/bin", out) == len(BINARY)
        assert out.getvalue() == BINARY
        stat = f.stat("/workspace/a.txt")
        assert (stat.type, stat.size, stat.mode) == ("file", 5, 0o600)
        assert stat.mtime.startswith("2020-09-13")
        assert f.get_info("/workspace/a.txt") == stat
        assert f.exists("/workspace/a.txt") and not f.exists("/workspace/nope")
        made = f.make_dir("/workspace/d/e")
        assert made.type == "dir"
        moved = f.rename("/workspace/a.txt", "/workspace/d/a.txt")
        assert moved.path == "/workspace/d/a.txt"
        names = [e.path for e in f.list("/workspace/d", depth=2)]
        assert names == ["/workspace/d/a.txt", "/workspace/d/e"]
        with pytest.raises(ConflictError):
            f.remove("/workspace/d")
        f.remove("/workspace/d", recursive=True)
        assert not f.exists("/workspace/d")


class _ShrunkFile(io.BytesIO):
    """A file whose size says more than its reads give: half of it, as if cut while it
    is sent."""

    def read(self, size: int | None = -1) -> bytes:
        left = max(0, len(self.getvalue()) // 2 - self.tell())
        return super().read(left if size is None or size < 0 else min(size, left))


def test_a_file_goes_from_where_it_stands_and_whole_or_not_at_all(env: Daemon) -> None:
    with Sandbox.create() as sb:
        source = io.BytesIO(BINARY)
        source.seek(1000)
        sb.files.write("/workspace/rest", source)
        assert sb.files.read("/workspace/rest") == BINARY[1000:]
        # Its length goes ahead of it, so a file that gives less is refused, not stored
        # short; the old content stays.
        with pytest.raises(ValueError, match="changed while it was sent"):
            sb.files.write("/workspace/rest", _ShrunkFile(BINARY))
        assert sb.files.read("/workspace/rest") == BINARY[1000:]


def test_write_files_is_one_batch_with_per_file_results(env: Daemon) -> None:
    with Sandbox.create() as sb:
        result = sb.files.write_files(
            [
                {"path": "/workspace/x/one", "data": "1", "mode": 0o640},
                {"path": "relative", "data": b"refused"},
                {"path": "/workspace/x/two", "data": BINARY, "sha256": "0" * 64},
                {"path": "/workspace/x/four", "data": b"4", "crc64nvme": crc64nvme(b"4")},
                {"path": "/workspace/x/three", "data": b"3"},
            ]
        )
        assert (result.written, result.failed) == (3, 2)
        assert [r.ok for r in result.results] == [True, False, False, True, True]
        assert result.results[1].error_code == "bad_request"
        assert sb.files.stat("/workspace/x/one").mode == 0o640
        assert not sb.files.exists("/workspace/x/two")


def test_commands_buffered_streamed_stdin_and_exit_codes(env: Daemon) -> None:
    with Sandbox.create() as sb:
        run = sb.commands.run
        assert run(["printf", "%s", "argv"]).stdout == "argv"
        assert run("cat", stdin=BINARY[:1000]).stdout_bytes == BINARY[:1000]
        assert run("pwd", cwd="/tmp").stdout == "/tmp\n"
        assert run("echo $X", env={"X": "y"}).stdout == "y\n"
        assert run("exit 3").exit_code == 3
        with pytest.raises(CommandExitError) as failed:
            run("echo oops >&2; exit 4", check=True)
        assert failed.value.exit_code == 4 and "oops" in failed.value.stderr
        seen: list[str] = []
        errors: list[str] = []
        done = run(
            "for i in 1 2 3; do echo $i; done; echo bad >&2",
            on_stdout=seen.append,
            on_stderr=errors.append,
        )
        assert "".join(seen) == "1\n2\n3\n" and "".join(errors) == "bad\n"
        assert done.exit_code == 0 and done.stdout == "1\n2\n3\n"
        slow = run("sleep 5", timeout=0.3)
        assert slow.timed_out and slow.exit_code == 124


def test_errors_carry_the_daemons_codes(env: Daemon) -> None:
    with Sandbox.create(files=[{"path": "/etc/app.conf", "data": "k=v", "readonly": True}]) as sb:
        with pytest.raises(NotFoundError) as missing:
            sb.files.read("/workspace/missing")
        assert missing.value.status == 404 and missing.value.code == "not_found"
        with pytest.raises(BadRequestError):
            sb.files.write("relative/path", "x")
        with pytest.raises(PermissionDeniedError):
            sb.files.write("/etc/app.conf", "changed")
        assert sb.files.read("/etc/app.conf", format="text") == "k=v"
    with pytest.raises(AuthenticationError):
        Sandbox.list(token="wrong")


def test_url_and_token_from_the_daemons_home(
    daemon: Daemon, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRLOCK_TOKEN", raising=False)
    monkeypatch.setenv("AIRLOCK_URL", daemon.url)
    monkeypatch.setenv("AIRLOCK_HOME", str(daemon.home))
    assert isinstance(Sandbox.list(), list)


def test_progress_is_reported_up_and_down(env: Daemon, tmp_path: Path) -> None:
    ups: list[tuple[int, int | None]] = []
    downs: list[tuple[int, int | None]] = []
    with Sandbox.create() as sb:
        sb.files.write(
            "/workspace/p", io.BytesIO(BINARY), on_progress=lambda s, t: ups.append((s, t))
        )
        assert ups[-1] == (len(BINARY), len(BINARY))
        assert [s for s, _ in ups] == sorted(s for s, _ in ups)
        sb.files.read_to(
            "/workspace/p", io.BytesIO(), on_progress=lambda s, t: downs.append((s, t))
        )
        assert downs[-1] == (len(BINARY), len(BINARY))
        resumed: list[int] = []
        sb.files.write(
            "/workspace/r", BINARY, resumable=True, on_progress=lambda s, _: resumed.append(s)
        )
        assert resumed[-1] == len(BINARY)
        assert sb.files.read("/workspace/r") == BINARY
        (tmp_path / "t").mkdir()
        (tmp_path / "t" / "f").write_bytes(BINARY)
        tree: list[int] = []
        sb.files.upload_path(
            str(tmp_path / "t"), "/workspace/t", on_progress=lambda s, _: tree.append(s)
        )
        assert tree[-1] > len(BINARY)
