"""Writes the hand-made seed inputs of the fuzz targets (run from fuzz/).

Each seed shows the fuzzer one shape it must handle: every tar entry kind and header
format, a two-part batch body, and each request header the parsers read.
"""

import io
import pathlib
import tarfile

SEEDS = pathlib.Path(__file__).parent


def write(target: str, name: str, data: bytes) -> None:
    (SEEDS / target).mkdir(exist_ok=True)
    (SEEDS / target / name).write_bytes(data)


def tar(
    name: str, fmt: int, *entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]
) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as archive:
        for entry in entries:
            if isinstance(entry, tuple):
                archive.addfile(entry[0], io.BytesIO(entry[1]))
            else:
                archive.addfile(entry)
    write("tar_unpack", name, buf.getvalue())


def file(
    name: str, data: bytes = b"hello", mode: int = 0o644
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 1_600_000_000
    return info, data


def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o755
    return info


tar(
    "tree",
    tarfile.GNU_FORMAT,
    special("d", tarfile.DIRTYPE),
    file("d/f"),
    special("d/l", tarfile.SYMTYPE, "f"),
    special("d/h", tarfile.LNKTYPE, "d/f"),
)
tar("pax_long_name", tarfile.PAX_FORMAT, file("p/" + "n" * 200, b"x" * 700))
tar("gnu_long_name", tarfile.GNU_FORMAT, file("g/" + "n" * 200, b"y" * 10))
tar("dotdot", tarfile.GNU_FORMAT, file("../escape"))
tar(
    "symlink_then_file",
    tarfile.GNU_FORMAT,
    special("esc", tarfile.SYMTYPE, "/"),
    file("esc/etc/x"),
)
tar(
    "devices_fifo_setuid",
    tarfile.USTAR_FORMAT,
    special("fifo", tarfile.FIFOTYPE),
    special("chr", tarfile.CHRTYPE),
    file("suid", b"#!", 0o4755),
)

write(
    "multipart",
    "two_parts",
    b'--XyZ\r\nContent-Disposition: form-data; name="f"; filename="/workspace/a"\r\n'
    b"X-Airlock-Mode: 0755\r\nX-Airlock-Sha256: " + b"0" * 64 + b"\r\n\r\nhello\r\n"
    b'--XyZ\r\nContent-Disposition: form-data; name="/workspace/b"\r\n\r\nworld\r\n--XyZ--\r\n',
)
write("multipart", "empty", b"--XyZ--\r\n")

# The first byte picks the parser (see fuzz_targets/request_headers.rs).
for name, data in {
    "range": b"\x00bytes=0-9",
    "range_suffix": b"\x04bytes=-5",
    "range_open": b"\x08bytes=7-",
    "tus_metadata": b"\x01path L3dvcmtzcGFjZS9h,mode MDc1NQ==,mtime MTYwMDAwMDAwMA==,overwrite ZmFsc2U=",
    "tus_sha1": b"\x02sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=",
    "tus_sha256": b"\x02sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=",
    "write_options": b"\x030755\n1600000000.5\n" + b"a" * 64,
    "write_options_rfc3339": b"\x03644\n2020-01-01T00:00:00Z\n",
}.items():
    write("request_headers", name, data)


# Protobuf by hand, enough for the seeds: varints and length-delimited fields.
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: "bytes | int") -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


# The first byte picks the message (see fuzz_targets/grpc_messages.rs): mod 4, upload,
# download, batch file, or an envd Connect message.
upload_meta = (
    field(1, b"0123456789ab")
    + field(2, b"/workspace/a")
    + field(3, 5)
    + field(4, 0o755)
    + field(7, b"2020-01-01T00:00:00Z")
    + field(8, b"a" * 64)
    + field(10, 1)
)
download = (
    field(1, b"0123456789ab") + field(2, b"/workspace/a") + field(5, 3) + field(6, 4)
)
batch_file = field(1, b"/workspace/b") + field(2, 0o600) + field(3, b"1600000000.5")
for name, data in {
    "upload_metadata": b"\x00" + field(1, upload_meta),
    "upload_archive": b"\x00"
    + field(1, field(2, b"/workspace/t") + field(5, 1) + field(6, 2)),
    "upload_chunk": b"\x00" + field(2, b"hello"),
    "download_range": b"\x01" + download,
    # The same, framed as a whole gRPC request body: flag 0, then a big-endian length.
    "download_framed": b"\x01\x00" + len(download).to_bytes(4, "big") + download,
    "download_archive": b"\x05" + field(2, b"/workspace") + field(3, 1),
    "batch_file": b"\x02" + field(2, batch_file),
    # envd's Connect messages: pick 3 mod 4, then the method (pick / 4) in file order.
    "connect_list_dir": b"\x0f" + field(1, b"/home/user") + field(2, 2),
    "connect_start": b"\x2f"
    + field(
        1,
        field(1, b"/bin/sh")
        + field(2, b"-c")
        + field(3, field(1, b"K") + field(2, b"V"))
        + field(4, b"/tmp"),
    )
    + field(2, field(1, field(1, 80) + field(2, 24)))
    + field(3, b"tag")
    + field(4, 1),
    "connect_stream_input": b"\x37" + field(2, field(2, field(1, b"\x00\xff"))),
}.items():
    write("grpc_messages", name, data)


# An UploadFile request body, framed as gRPC sends it; the first byte is the size of the
# data frames it is cut into (see fuzz_targets/grpc_upload_body.rs).
def grpc_frame(message: bytes) -> bytes:
    return b"\x00" + len(message).to_bytes(4, "big") + message


upload_body = (
    grpc_frame(field(1, upload_meta))
    + grpc_frame(field(2, b"hello"))
    + grpc_frame(field(2, bytes(range(200))))
    + grpc_frame(b"")
    + grpc_frame(field(2, b"ab") + field(2, b"xyz"))
)
for name, data in {
    "upload_body_1": b"\x01" + upload_body,
    "upload_body_7": b"\x07" + upload_body,
    "upload_body_whole": b"\xff" + upload_body,
    "upload_body_cut": b"\x03" + upload_body[:-4],
}.items():
    write("grpc_upload_body", name, data)
