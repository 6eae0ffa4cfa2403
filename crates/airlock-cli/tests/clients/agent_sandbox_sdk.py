"""Drives an Airlock sandbox with the unmodified agent-sandbox SDK (k8s-agent-sandbox,
pinned in scripts/setup) over a direct connection, as its users would: the SDK's own
calls, then the examples of its files documentation. Run by tests/compat_agent_sandbox.rs
with AIRLOCK_URL, AIRLOCK_TOKEN and SANDBOX_ID set; exits non-zero on the first failure."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile

import kubernetes
import requests
from k8s_agent_sandbox.k8s_helper import K8sHelper
from k8s_agent_sandbox.models import SandboxDirectConnectionConfig
from k8s_agent_sandbox.sandbox import Sandbox

URL = os.environ["AIRLOCK_URL"] + "/agent-sandbox"
TOKEN = os.environ["AIRLOCK_TOKEN"]
SANDBOX_ID = os.environ["SANDBOX_ID"]


def attach() -> Sandbox:
    """What `client.create_sandbox(...)` hands back, for a sandbox that exists already.
    There is no Kubernetes API here: the SDK's pod-IP lookup fails (a closed port) and
    it routes by its X-Sandbox-* headers, as through the agent-sandbox router."""
    no_cluster = kubernetes.client.Configuration(host="http://127.0.0.1:9")
    config = SandboxDirectConnectionConfig(
        api_url=URL, extra_headers={"Authorization": f"Bearer {TOKEN}"}
    )
    return Sandbox(
        claim_name="airlock",
        sandbox_id=SANDBOX_ID,
        namespace="default",
        connection_config=config,
        k8s_helper=K8sHelper(api_client=kubernetes.client.ApiClient(no_cluster)),
    )


def sdk_calls(sandbox: Sandbox) -> None:
    files = sandbox.files
    files.write("/workspace/bytes.bin", bytes(range(256)) * 4)
    assert files.read("/workspace/bytes.bin") == bytes(range(256)) * 4
    files.write("workspace/text.txt", "héllo\n")
    assert files.read("/workspace/text.txt") == "héllo\n".encode()
    # A file object streams: 32 MiB without the SDK or the daemon holding it whole.
    big = os.urandom(1 << 20) * 32
    files.write("/workspace/big.bin", io.BytesIO(big))
    sink = io.BytesIO()
    assert files.read_to("/workspace/big.bin", sink) == len(big)
    assert hashlib.sha256(sink.getvalue()).digest() == hashlib.sha256(big).digest()
    names = {e.name: e for e in files.list("/workspace")}
    assert names["big.bin"].size == len(big) and names["big.bin"].type == "file"
    assert files.exists("/workspace/text.txt")
    assert not files.exists("/workspace/missing.txt")
    result = sandbox.commands.run("echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    # The SDK keeps delete for sandboxd runtimes; Airlock serves sandboxd's route too.
    try:
        files.delete("/workspace/text.txt")
        raise AssertionError("the SDK let a direct connection delete")
    except NotImplementedError:
        pass
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Sandbox-ID": SANDBOX_ID}
    gone = requests.delete(f"{URL}/v1/files/workspace%2Ftext.txt", headers=headers)
    assert gone.status_code == 204, gone.text
    assert not files.exists("/workspace/text.txt")


def documentation_examples(sandbox: Sandbox, local: str) -> None:
    """The examples of the SDK's "Upload and Download" page, verbatim but for creating
    and terminating the sandbox (which need Kubernetes)."""
    # Upload a local file.
    with open(os.path.join(local, "local_data.csv"), "wb") as f:
        f.write(b"a,b\n1,2\n")
    with open(os.path.join(local, "local_data.csv"), "rb") as f:
        sandbox.files.write("/home/user/data.csv", f.read())
    entries = sandbox.files.list("/home/user")
    assert any(e.name == "data.csv" and e.size == 8 for e in entries)

    # Download a file from the sandbox.
    sandbox.commands.run("echo 'analysis complete' > /home/user/results.txt")
    content = sandbox.files.read("/home/user/results.txt")
    assert content == b"analysis complete\n"

    # Upload a directory.
    local_dir = os.path.join(local, "my_project")
    os.makedirs(local_dir)
    for n in range(3):
        with open(os.path.join(local_dir, f"f{n}.py"), "w") as f:
            f.write(f"print({n})\n")
    sandbox_dir = "/home/user/project"
    for filename in os.listdir(local_dir):
        filepath = os.path.join(local_dir, filename)
        if os.path.isfile(filepath):
            with open(filepath, "rb") as f:
                sandbox.files.write(f"{sandbox_dir}/{filename}", f.read())
    assert len(sandbox.files.list(sandbox_dir)) == 3

    # Download multiple files.
    sandbox.commands.run(
        "mkdir -p /home/user/output && echo x > /home/user/output/a && echo yy > /home/user/output/b"
    )
    out_dir = os.path.join(local, "downloaded_output")
    os.makedirs(out_dir, exist_ok=True)
    for entry in sandbox.files.list("/home/user/output"):
        if entry.type == "file":
            data = sandbox.files.read(f"/home/user/output/{entry.name}")
            with open(os.path.join(out_dir, entry.name), "wb") as f:
                f.write(data)
    assert sorted(os.listdir(out_dir)) == ["a", "b"]

    # End to end: upload, process, download.
    sandbox.files.write("/home/user/input.csv", b"x,y\n3,4\n5,6\n")
    sandbox.files.write(
        "/home/user/process.py",
        "import csv\n"
        "with open('/home/user/input.csv') as f:\n"
        "    rows = list(csv.reader(f))\n"
        "print(f'Processed {len(rows)} rows')\n"
        "with open('/home/user/output.csv', 'w') as f:\n"
        "    csv.writer(f).writerows(rows)\n",
    )
    result = sandbox.commands.run("python3 /home/user/process.py")
    assert result.stdout == "Processed 3 rows\n", result
    assert sandbox.files.read("/home/user/output.csv") == b"x,y\r\n3,4\r\n5,6\r\n"


def refusals() -> None:
    no_token = requests.get(
        f"{URL}/list/workspace", headers={"X-Sandbox-ID": SANDBOX_ID}
    )
    assert no_token.status_code == 401, no_token.text
    headers = {"Authorization": f"Bearer {TOKEN}", "X-Sandbox-ID": "0123456789ab"}
    other = requests.get(f"{URL}/list/workspace", headers=headers)
    assert other.status_code == 404, other.text
    assert "message" in other.json()


def main() -> None:
    sandbox = attach()
    sdk_calls(sandbox)
    with tempfile.TemporaryDirectory() as local:
        documentation_examples(sandbox, local)
    refusals()
    sandbox.close_connection()
    print("agent-sandbox SDK: all passed")


if __name__ == "__main__":
    main()
