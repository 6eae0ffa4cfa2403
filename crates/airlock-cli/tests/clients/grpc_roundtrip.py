"""A Python gRPC client of Airlock, generated from proto/airlock/v1 at test time with
grpcio-tools: streams a file up and down over UploadFile/DownloadFile and checks it.

Usage: grpc_roundtrip.py ADDRESS TOKEN SANDBOX_ID MIB PROTO_DIR
Prints one line: "ok <bytes> <sha256>".
"""

import hashlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterator

import grpc
from grpc_tools import protoc

CHUNK = 1 << 20


def generate(proto_dir: str, out: str) -> None:
    """Compiles the proto files into importable modules in `out`."""
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    status = protoc.main(
        [
            "protoc",
            f"-I{proto_dir}",
            f"-I{include}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "airlock/v1/files.proto",
        ]
    )
    if status != 0:
        raise SystemExit(f"protoc failed: {status}")
    # Regular packages, so these win over the Python SDK's own `airlock` package when
    # both are importable (a namespace package would lose to it).
    for package in ("airlock", "airlock/v1"):
        open(os.path.join(out, package, "__init__.py"), "w").close()
    sys.path.insert(0, out)


def block(i: int) -> bytes:
    """Deterministic, incompressible-looking data: a sha256 chain."""
    seed = hashlib.sha256(i.to_bytes(8, "little")).digest()
    return (seed * (CHUNK // len(seed) + 1))[:CHUNK]


def main() -> None:
    address, token, sandbox, mib, proto_dir = sys.argv[1:6]
    with tempfile.TemporaryDirectory() as out:
        generate(proto_dir, out)
        pb = importlib.import_module("airlock.v1.files_pb2")
        rpc = importlib.import_module("airlock.v1.files_pb2_grpc")
        limit = [("grpc.max_receive_message_length", 16 << 20)]
        channel = grpc.insecure_channel(address, options=limit)
        files = rpc.FilesStub(channel)
        auth = [("authorization", f"Bearer {token}")]
        sent = hashlib.sha256()

        def requests() -> Iterator[object]:
            meta = pb.UploadFileMetadata(
                sandbox_id=sandbox,
                remote_path="/workspace/py.bin",
                mode=0o600,
                checksum="sha256",
            )
            yield pb.UploadFileRequest(metadata=meta)
            for i in range(int(mib)):
                chunk = block(i)
                sent.update(chunk)
                yield pb.UploadFileRequest(chunk=chunk)

        done = files.UploadFile(requests(), metadata=auth)
        assert done.result.sha256 == sent.hexdigest(), done
        assert done.result.entry.mode == 0o600, done
        got = hashlib.sha256()
        total = 0
        request = pb.DownloadFileRequest(
            sandbox_id=sandbox, remote_path="/workspace/py.bin"
        )
        for message in files.DownloadFile(request, metadata=auth):
            if message.WhichOneof("payload") == "chunk":
                total += len(message.chunk)
                got.update(message.chunk)
        assert got.hexdigest() == sent.hexdigest()
        try:
            files.Stat(pb.StatRequest(sandbox_id=sandbox, path="/nope"), metadata=auth)
            raise SystemExit("Stat of a missing file succeeded")
        except grpc.RpcError as missing:
            assert missing.code() == grpc.StatusCode.NOT_FOUND, missing
        print(f"ok {total} {got.hexdigest()}")


if __name__ == "__main__":
    main()
