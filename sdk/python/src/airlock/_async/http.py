"""One connection pool per client, the bearer token on every request, errors raised as
the daemon's codes, and idempotent reads retried while the daemon is unreachable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from .. import _core
from .._config import Config
from . import _io, _transport

#: Tries of an idempotent request whose connection is refused, and the pause between.
ATTEMPTS = 3
BACKOFF = 0.2


class AsyncHTTP:
    """The daemon, over one pooled HTTP client."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.url,
            headers={"Authorization": f"Bearer {config.token}"},
            # Writes and reads stream for as long as they flow; only silence times out.
            timeout=httpx.Timeout(config.timeout),
            # The daemon drops idle connections after 30 s; never reuse one near that.
            transport=_transport.transport(httpx.Limits(keepalive_expiry=20.0), config.url),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        content: _io.Body | None = None,
        files: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = False,
    ) -> Any:
        """Sends one request and answers its JSON (None for an empty answer)."""
        request = self._client.build_request(
            method,
            path,
            params=params,
            json=json_body,
            content=content,
            files=files,
            headers=headers,
        )
        response = await self._send(request, stream=False, retry=idempotent)
        if response.status_code >= 400:
            raise _core.failure(response.status_code, response.content)
        if not response.content:
            return None
        return json.loads(response.content)

    async def _send(self, request: httpx.Request, *, stream: bool, retry: bool) -> httpx.Response:
        """Sends `request`. One that may safely repeat is tried again while the daemon
        refuses connections (a restart, say), backing off a little each time."""
        for attempt in range(1, ATTEMPTS if retry else 1):
            try:
                return await self._client.send(request, stream=stream)
            except httpx.ConnectError:
                await _io.sleep(BACKOFF * attempt)
        return await self._client.send(request, stream=stream)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json_body: Any = None,
        timeout: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[httpx.Response]:
        """An answer whose body is read as it arrives; errors are raised first. Reads
        time out as the client's do unless `timeout` says otherwise (None: never, for
        answers that may rightly be silent, as a command's output or a watch)."""
        request = self._client.build_request(
            method, path, params=params, json=json_body, timeout=timeout
        )
        response = await self._send(request, stream=True, retry=method == "GET")
        try:
            if response.status_code >= 400:
                raise _core.failure(response.status_code, await response.aread())
            yield response
        finally:
            await response.aclose()

    async def tus_create(self, route: str, length: int, metadata: str) -> str:
        """Creates a tus upload; answers its location."""
        headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(length),
            "Upload-Metadata": metadata,
        }
        response = await self._client.post(route, headers=headers)
        if response.status_code >= 400:
            raise _core.failure(response.status_code, response.content)
        return str(response.headers["location"])

    async def tus_patch(
        self, location: str, offset: int, chunk: _io.Body
    ) -> tuple[int, dict[str, str] | None]:
        """Appends at `offset`; answers the upload's new offset, and the file's checksums
        once the last byte committed it."""
        headers = {
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        }
        response = await self._client.patch(location, headers=headers, content=chunk)
        if response.status_code >= 500:
            raise httpx.RemoteProtocolError(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise _core.failure(response.status_code, response.content)
        offset = int(response.headers["upload-offset"])
        if "x-airlock-crc64nvme" not in response.headers:
            return offset, None
        sums = {"crc64nvme": response.headers["x-airlock-crc64nvme"]}
        if "x-airlock-sha256" in response.headers:
            sums["sha256"] = response.headers["x-airlock-sha256"]
        return offset, sums

    async def tus_offset(self, location: str) -> int:
        """Where a tus upload stands, by HEAD."""
        response = await self._client.head(location, headers={"Tus-Resumable": "1.0.0"})
        if response.status_code >= 400:
            raise _core.failure(response.status_code, b"")
        return int(response.headers["upload-offset"])
