"""Running commands in a sandbox, buffered or with output streamed to callbacks."""

from __future__ import annotations

import json
from typing import Callable

from .. import _core
from ..errors import AirlockError, CommandExitError
from ..models import CommandResult
from .http import AsyncHTTP

#: Called with each piece of output as it arrives (text; invalid UTF-8 replaced).
OnOutput = Callable[[str], None]


class AsyncCommands:
    """Commands of one sandbox (`sandbox.commands`)."""

    def __init__(self, http: AsyncHTTP, sandbox_id: str) -> None:
        self._http = http
        self._id = sandbox_id

    async def run(
        self,
        cmd: str | list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float | None = None,
        stdin: str | bytes | None = None,
        on_stdout: OnOutput | None = None,
        on_stderr: OnOutput | None = None,
        check: bool = False,
    ) -> CommandResult:
        """Runs `cmd` (a string for /bin/sh -c, or an argv list) to the end. With
        callbacks, output reaches them as it happens. A non-zero exit raises
        CommandExitError only with `check=True` (as `subprocess.run`); a timeout kills
        the whole process tree and answers exit code 124 with `timed_out`."""
        body = _core.command_body(cmd, env, cwd, timeout, stdin)
        route = _core.sandbox_route(self._id, "/exec")
        if on_stdout is None and on_stderr is None:
            result = _core.command_result(await self._http.call("POST", route, json_body=body))
        else:
            result = await self._streamed(route, body, on_stdout, on_stderr)
        if check and result.exit_code != 0:
            raise CommandExitError(result.exit_code, result.stdout, result.stderr)
        return result

    async def _streamed(
        self,
        route: str,
        body: dict[str, object],
        on_stdout: OnOutput | None,
        on_stderr: OnOutput | None,
    ) -> CommandResult:
        out, err = bytearray(), bytearray()
        exit_code, timed_out = -1, False
        params = {"stream": "true"}
        async with self._http.stream(
            "POST", route, params=params, json_body=body, timeout=None
        ) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("type")
                if kind in ("stdout", "stderr"):
                    data = _core.event_bytes(event)
                    (out if kind == "stdout" else err).extend(data)
                    callback = on_stdout if kind == "stdout" else on_stderr
                    if callback is not None:
                        callback(data.decode(errors="replace"))
                elif kind == "exit":
                    exit_code = int(event["exit_code"])
                    timed_out = bool(event.get("timed_out"))
                elif kind == "error":
                    raise AirlockError(str(event.get("message")), "internal")
        return CommandResult(
            exit_code=exit_code,
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            stdout_bytes=bytes(out),
            stderr_bytes=bytes(err),
            timed_out=timed_out,
        )
