"""A download's body, read straight from the connection once it is large.

httpx hands a body over through h11, which copies every byte three times on its way
(into its receive buffer, then out of it twice) before httpcore copies it once more. A
1 GiB download spent 0.35 s of its 0.52 s in those copies; reading the socket alone
took 0.16 s (the sync SDK into `/dev/null`, by hand). So a plain HTTP/1.1 body with
more than `DIRECT` bytes still to come is read from the connection's own stream
(httpcore's documented `network_stream` extension) once h11 has given up what it holds:
0.19–0.21 s for the same download. The connection is closed after it rather than kept,
since h11 never saw the rest of the body. Each read asks for `READ` bytes (256 KiB):
larger reads were slower, 0.26–0.33 s with 1 MiB and 0.50–0.59 s with 2 MiB (why was
not measured; each read gets a fresh buffer, and large ones come from `mmap` with their
pages faulted in one by one, which would explain it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpcore
import httpx

from ._io import Rest
from ._transport import READ

#: The least a body must still have to come to be read past h11: below it, keeping
#: the connection for the next request is worth more than the copies saved.
DIRECT = 1 << 20


async def chunks(response: httpx.Response, rest: Rest | None = None) -> AsyncIterator[bytes]:
    """The body of `response`, as it arrives. Once it is read past h11, `rest` may take
    what is still to come instead (a download into a file copies it on one thread)."""
    length = _plain_length(response)
    if length is None:
        async for chunk in response.aiter_bytes():
            yield chunk
        return
    raw = response.aiter_raw()
    try:
        # h11 answers everything it has buffered as one chunk, so after the first
        # chunk all that is left of the body is still in the socket.
        received = 0
        async for chunk in raw:
            received += len(chunk)
            yield chunk
            break
        stream = response.extensions.get("network_stream")
        if length - received <= DIRECT or not isinstance(stream, httpcore.AsyncNetworkStream):
            async for chunk in raw:
                yield chunk
            return
        timeout = response.request.extensions.get("timeout", {}).get("read")
        if rest is not None and await rest(stream, length - received, timeout):
            return
        while received < length:
            data = await _read(stream, min(READ, length - received), timeout)
            if not data:
                short = length - received
                raise httpx.RemoteProtocolError(
                    f"the daemon closed the connection {short} bytes short"
                )
            # Past its stated length a body's bytes belong to nothing, as h11 would have
            # left them: the connection closes after, so they are never read as the next
            # answer. (The slice copies nothing when the read ends at the length.)
            data = data[: length - received]
            received += len(data)
            yield data
    finally:
        # Left part-way, httpcore's reading ends, and with it the connection: h11 did
        # not see the whole body, so the connection is never reused.
        await _close(raw)


async def _close(chunks: AsyncIterator[bytes]) -> None:
    """Ends an iteration that may have stopped part-way (httpx's are generators)."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


def _plain_length(response: httpx.Response) -> int | None:
    """The body's length, if it is sent as plain bytes of a stated length over HTTP/1.1,
    the only kind read past h11."""
    headers = response.headers
    if response.http_version != "HTTP/1.1" or "content-encoding" in headers:
        return None
    if "transfer-encoding" in headers:
        return None
    length = headers.get("content-length", "")
    return int(length) if length.isdigit() else None


async def _read(stream: httpcore.AsyncNetworkStream, size: int, timeout: float | None) -> bytes:
    """One read, with httpcore's failures raised as the httpx ones its own reads raise."""
    try:
        return await stream.read(size, timeout)
    except httpcore.ReadTimeout as error:
        raise httpx.ReadTimeout(str(error)) from error
    except httpcore.ReadError as error:
        raise httpx.ReadError(str(error)) from error
