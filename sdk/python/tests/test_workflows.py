"""The everyday workflows end to end: a platform worker seeding skills and pulling
artifacts, mirror mode before and after each command, and the agent-sandbox files
examples (write, read, list, exists) rewritten for this SDK."""

from __future__ import annotations

import os
from pathlib import Path

from airlock import AsyncSandbox, Sandbox

from .conftest import Daemon


def test_mirror_mode_moves_only_what_changed(env: Daemon, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "src").mkdir(parents=True)
    for i in range(20):
        (work / "src" / f"f{i}.txt").write_text(f"file {i}\n")
    (work / ".git").mkdir()
    (work / ".git" / "HEAD").write_text("ref\n")
    with Sandbox.create() as sb:
        first = sb.files.sync(str(work), "/workspace/work", exclude=[".git"])
        assert first.sent == 21  # 20 files and their directory
        assert not sb.files.exists("/workspace/work/.git")
        again = sb.files.sync(str(work), "/workspace/work", exclude=[".git"])
        assert (again.sent, again.deleted) == (0, 0)
        # Before a command: one local edit goes up alone.
        (work / "src" / "f3.txt").write_text("edited locally\n")
        os.utime(work / "src" / "f3.txt", (1_700_000_000, 1_700_000_000))
        assert sb.files.sync(str(work), "/workspace/work", exclude=[".git"]).sent == 1
        # The command changes one file and makes another; after it, only those come back.
        sb.commands.run(
            "cd /workspace/work && echo changed > src/f7.txt && mkdir -p out && echo r > out/report",
            check=True,
        )
        back = sb.files.sync(str(work), "/workspace/work", back=True, exclude=[".git"])
        assert back.sent == 3  # src/f7.txt, out, out/report
        assert (work / "src" / "f7.txt").read_text() == "changed\n"
        assert (work / "out" / "report").read_text() == "r\n"
        assert (work / ".git" / "HEAD").exists()
        # Deletions, when asked, both ways.
        (work / "src" / "f0.txt").unlink()
        pushed = sb.files.sync(str(work), "/workspace/work", delete=True, exclude=[".git"])
        assert pushed.deleted == 1 and not sb.files.exists("/workspace/work/src/f0.txt")
        sb.commands.run("rm -r /workspace/work/out", check=True)
        pulled = sb.files.sync(
            str(work), "/workspace/work", back=True, delete=True, exclude=[".git"]
        )
        assert pulled.deleted == 1 and not (work / "out").exists()


def test_mirror_mode_reaches_the_bottom_of_a_deep_tree(env: Daemon, tmp_path: Path) -> None:
    """Deeper than a listing used to go (64 levels), the bottom was resent on every push,
    never pulled, and removed locally by a pull that deletes."""
    work = tmp_path / "deep"
    bottom = work.joinpath(*["d"] * 150)
    bottom.mkdir(parents=True)
    (bottom / "leaf").write_text("leaf\n")
    with Sandbox.create() as sb:
        assert sb.files.sync(str(work), "/workspace/deep").sent == 151
        assert sb.files.sync(str(work), "/workspace/deep").sent == 0
        there = "/workspace/deep/" + "d/" * 150
        sb.commands.run(f"echo made > {there}new && rm {there}leaf", check=True)
        pulled = sb.files.sync(str(work), "/workspace/deep", back=True, delete=True)
        assert (pulled.sent, pulled.deleted) == (1, 1)
        assert (bottom / "new").read_text() == "made\n"
        assert not (bottom / "leaf").exists()


async def test_a_platform_worker_seeds_skills_and_pulls_artifacts(
    env: Daemon, tmp_path: Path
) -> None:
    skills = tmp_path / "skills"
    skills.mkdir()
    (skills / "summarize.py").write_text(
        "import pathlib\n"
        "text = pathlib.Path('/workspace/input.txt').read_text()\n"
        "out = pathlib.Path('/workspace/artifacts')\n"
        "out.mkdir(exist_ok=True)\n"
        "(out / 'summary.txt').write_text(text.upper())\n"
        "(out / 'raw.bin').write_bytes(bytes(range(256)))\n"
    )
    policy = {"path": "/etc/agent/policy.json", "data": '{"net": false}', "readonly": True}
    async with await AsyncSandbox.create(files=[policy], labels={"worker": "w1"}) as sb:
        await sb.files.upload_path(str(skills), "/workspace/skills")
        await sb.files.write("/workspace/input.txt", "quarterly numbers")
        run = await sb.commands.run("python3 /workspace/skills/summarize.py", check=True)
        assert run.exit_code == 0
        artifacts = tmp_path / "artifacts"
        await sb.files.download_path("/workspace/artifacts", str(artifacts))
    assert (artifacts / "summary.txt").read_text() == "QUARTERLY NUMBERS"
    assert (artifacts / "raw.bin").read_bytes() == bytes(range(256))


def test_the_agent_sandbox_files_examples(env: Daemon) -> None:
    # agent-sandbox's examples write a file, read it back, list a directory and check
    # for existence; the same calls here, with absolute sandbox paths.
    with Sandbox.create() as sb:
        sb.files.write("/workspace/hello.txt", "Hello from the sandbox!")
        assert sb.files.read("/workspace/hello.txt", format="text") == "Hello from the sandbox!"
        listing = {e.name: e for e in sb.files.list("/workspace")}
        assert listing["hello.txt"].type == "file" and listing["hello.txt"].size == 23
        assert sb.files.exists("/workspace/hello.txt")
        assert not sb.files.exists("/workspace/missing.txt")
        result = sb.commands.run(["python3", "-c", "print(open('/workspace/hello.txt').read())"])
        assert result.stdout == "Hello from the sandbox!\n"
