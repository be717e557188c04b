"""HTTP plumbing of the OpenAI service: SSE framing and answers computed while watching."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from paddler_tui.server.balancer.web.streaming import while_connected

SSE_DONE = b"data: [DONE]\n\n"

Answer = tuple[int, dict[str, Any]]


def json_response(status_code: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def sse_data(payload: dict[str, Any]) -> bytes:
    """A chat completion event: ``data:`` only."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def sse_event(payload: dict[str, Any]) -> bytes:
    """A responses event: named by its ``type``."""
    name = str(payload["type"]).encode()
    return b"event: " + name + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class CollectedResponse(Response):
    """A JSON answer worked out while watching the client.

    Starlette would run a handler to its end after the client left, so a non-streaming request
    would keep its place in the buffer or its slot; here ``http.disconnect`` cancels the work,
    whose cleanup leaves the buffer or stops the agent.
    """

    def __init__(self, compute: Callable[[], Coroutine[Any, Any, Answer]]) -> None:
        self._compute = compute
        self.status_code = 200
        self.background = None
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = await while_connected(self._compute(), receive)
        if answer is None:
            return  # the client left; nobody to answer
        status_code, body = answer
        await json_response(status_code, body)(scope, receive, send)
