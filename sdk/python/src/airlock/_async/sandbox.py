"""Sandboxes: create, connect, list, kill; each with its `files` and `commands`."""

from __future__ import annotations

import builtins
from types import TracebackType

# `builtins.list`: the `list` method shadows the builtin inside the class.
from typing import Any

from .. import _core
from .._config import discover
from ..models import SandboxInfo
from . import _io
from .commands import AsyncCommands
from .files import AsyncFiles
from .http import AsyncHTTP


class AsyncSandbox:
    """One sandbox. As a context manager (`with` / `async with`), it is deleted on
    leaving the block."""

    def __init__(self, info: SandboxInfo, http: AsyncHTTP) -> None:
        self.info = info
        self.sandbox_id = info.sandbox_id
        self._http = http
        self.files = AsyncFiles(http, info.sandbox_id)
        self.commands = AsyncCommands(http, info.sandbox_id)

    @classmethod
    async def create(
        cls,
        template: str | None = None,
        *,
        env: dict[str, str] | None = None,
        files: list[dict[str, Any]] | None = None,
        limits: dict[str, Any] | None = None,
        ttl: int | None = None,
        labels: dict[str, str] | None = None,
        start: bool | None = None,
        url: str | None = None,
        token: str | None = None,
    ) -> AsyncSandbox:
        """Creates a sandbox and (unless `start=False`) starts it. `files` are written
        before any process runs: `{"path", "data", "mode"?, "readonly"?}`. On a
        cluster the daemon answers `pending` before the sandbox's pod runs; this waits
        until it is not (the daemon bounds the wait, and a sandbox that cannot be made
        is gone with the reason: `NotFoundError`)."""
        http = AsyncHTTP(discover(url, token))
        body = _core.create_body(template, env, files, limits, ttl, labels, start)
        try:
            answer = await http.call("POST", "/v1/sandboxes", json_body=body)
            info = SandboxInfo.from_json(answer)
            while info.state == "pending":
                await _io.sleep(_core.PENDING_POLL)
                route = f"/v1/sandboxes/{info.sandbox_id}"
                info = SandboxInfo.from_json(await http.call("GET", route))
        except BaseException:
            await http.aclose()
            raise
        return cls(info, http)

    @classmethod
    async def connect(
        cls, sandbox_id: str, *, url: str | None = None, token: str | None = None
    ) -> AsyncSandbox:
        """An existing sandbox."""
        http = AsyncHTTP(discover(url, token))
        try:
            answer = await http.call("GET", _core.sandbox_route(sandbox_id), idempotent=True)
        except BaseException:
            await http.aclose()
            raise
        return cls(SandboxInfo.from_json(answer), http)

    @classmethod
    async def list(
        cls, *, url: str | None = None, token: str | None = None
    ) -> builtins.list[SandboxInfo]:
        """Every sandbox the token may reach, oldest first."""
        http = AsyncHTTP(discover(url, token))
        try:
            answer = await http.call("GET", "/v1/sandboxes", idempotent=True)
        finally:
            await http.aclose()
        return [SandboxInfo.from_json(s) for s in answer]

    async def get_info(self) -> SandboxInfo:
        """The sandbox as the daemon shows it now."""
        answer = await self._http.call("GET", _core.sandbox_route(self.sandbox_id), idempotent=True)
        self.info = SandboxInfo.from_json(answer)
        return self.info

    async def create_token(self, access: str = "read", *, ttl: int | None = None) -> str:
        """Mints a token for this sandbox alone, `read` (its files) or `write` (also
        writes and commands), to hand to a tool that should reach nothing else. The
        secret is returned once."""
        body: dict[str, Any] = {"access": access}
        if ttl is not None:
            body["ttl_secs"] = ttl
        route = _core.sandbox_route(self.sandbox_id, "/tokens")
        answer = await self._http.call("POST", route, json_body=body)
        return str(answer["token"])

    async def download_url(self, path: str, *, ttl: int = 300) -> str:
        """A signed URL that downloads `path` (GET, Range too) with no header, until it
        expires: for a browser, `curl`, or a program that should hold no token."""
        return await self._sign(path, "GET", ttl)

    async def upload_url(self, path: str, *, ttl: int = 300) -> str:
        """A signed URL that replaces `path` with a PUT's body, with no header, until it
        expires."""
        return await self._sign(path, "PUT", ttl)

    async def _sign(self, path: str, method: str, ttl: int) -> str:
        body = {"path": path, "method": method, "ttl_secs": ttl}
        route = _core.sandbox_route(self.sandbox_id, "/files/signed-url")
        answer = await self._http.call("POST", route, json_body=body)
        return str(answer["url"])

    async def kill(self) -> None:
        """Deletes the sandbox: its processes and files are gone."""
        await self._http.call("DELETE", _core.sandbox_route(self.sandbox_id), idempotent=True)

    async def close(self) -> None:
        """Closes the client's connections; the sandbox lives on."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSandbox:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            await self.kill()
        finally:
            await self.close()
