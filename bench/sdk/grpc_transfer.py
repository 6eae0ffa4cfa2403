"""One timed gRPC transfer through grpcio (gRPC's C core), for bench/run's faces table.

Usage: grpc_transfer.py up|down SANDBOX_ID LOCAL REMOTE   (AIRLOCK_URL and AIRLOCK_TOKEN set)
Prints the transfer's seconds and the bytes it moved. The stubs are generated from proto/ into a temporary
directory before the clock starts, so neither that nor the interpreter's start-up is
charged to the transfer. Chunks are 1 MiB, as the other gRPC clients of the benchmarks send.
"""

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from types import ModuleType

import grpc
from grpc_tools import protoc  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

CHUNK = 1 << 20
PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")


def stubs() -> tuple[ModuleType, ModuleType]:
    out = tempfile.mkdtemp(prefix="airlock-grpc-")
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    args = ["protoc", f"-I{PROTO}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main([*args, "airlock/v1/files.proto"]) != 0:
        raise SystemExit("protoc failed")
    # Regular packages, so they win over the Python SDK, which is also named `airlock`.
    for package in ("airlock", "airlock/v1"):
        open(os.path.join(out, package, "__init__.py"), "w").close()
    sys.path.insert(0, out)
    from airlock.v1 import files_pb2, files_pb2_grpc  # type: ignore[import-not-found]

    return files_pb2, files_pb2_grpc


def main() -> None:
    direction, sandbox_id, local, remote = sys.argv[1:5]
    pb, rpc = stubs()
    target = os.environ["AIRLOCK_URL"].removeprefix("http://")
    auth = [("authorization", "Bearer " + os.environ["AIRLOCK_TOKEN"])]
    limits = [("grpc.max_receive_message_length", 16 << 20)]
    with grpc.insecure_channel(target, options=limits) as channel:
        files = rpc.FilesStub(channel)
        started = time.perf_counter()
        if direction == "up":
            size = os.path.getsize(local)

            def requests() -> Iterator[object]:
                meta = pb.UploadFileMetadata(
                    sandbox_id=sandbox_id, remote_path=remote, size_bytes=size
                )
                yield pb.UploadFileRequest(metadata=meta)
                with open(local, "rb") as source:
                    while chunk := source.read(CHUNK):
                        yield pb.UploadFileRequest(chunk=chunk)

            files.UploadFile(requests(), metadata=auth)
            moved = size
        else:
            moved = 0
            request = pb.DownloadFileRequest(sandbox_id=sandbox_id, remote_path=remote)
            with open(local, "wb") as sink:
                for message in files.DownloadFile(request, metadata=auth):
                    if message.WhichOneof("payload") == "chunk":
                        sink.write(message.chunk)
                        moved += len(message.chunk)
        print(f"{time.perf_counter() - started:.6f} {moved}")


if __name__ == "__main__":
    main()
