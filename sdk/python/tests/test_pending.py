"""A create answered `pending` (a cluster's pod not running yet) is waited out. The
local daemon never answers pending, so a stub plays a cluster-backed one here; the
gateway's own pending behaviour is tested in `crates/airlock-cli/tests/kubernetes.rs`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from airlock import AsyncSandbox, NotFoundError, Sandbox


def _sandbox(state: str) -> dict[str, Any]:
    return {
        "id": "0123456789ab",
        "template": "host",
        "state": state,
        "created_at": "2026-12-02T00:00:00Z",
    }


class _Stub(BaseHTTPRequestHandler):
    """Answers a create `pending`, then `pending` to the first GETs, then `states`' last."""

    states: ClassVar[list[str]] = []
    gets = 0

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self._answer(201, _sandbox("pending"))

    def do_GET(self) -> None:
        type(self).gets += 1
        state = self.states[min(type(self).gets, len(self.states)) - 1]
        if state == "gone":
            error = {"code": "not_found", "message": "sandbox could not be made: no image"}
            self._answer(404, {"error": error})
        else:
            self._answer(200, _sandbox(state))

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[type[_Stub]]:
    handler = type("Handler", (_Stub,), {"states": [], "gets": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()


def test_create_waits_until_the_sandbox_is_no_longer_pending(stub: type[_Stub]) -> None:
    stub.states = ["pending", "pending", "running"]
    url = stub.url  # type: ignore[attr-defined]
    sandbox = Sandbox.create(url=url, token="t")
    assert sandbox.info.state == "running"
    assert stub.gets == 3


async def test_async_create_waits_the_same_way(stub: type[_Stub]) -> None:
    stub.states = ["pending", "created"]
    url = stub.url  # type: ignore[attr-defined]
    sandbox = await AsyncSandbox.create(url=url, token="t", start=False)
    assert sandbox.info.state == "created"


def test_a_sandbox_that_could_not_be_made_is_not_found_with_the_reason(
    stub: type[_Stub],
) -> None:
    stub.states = ["pending", "gone"]
    url = stub.url  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="no image"):
        Sandbox.create(url=url, token="t")
