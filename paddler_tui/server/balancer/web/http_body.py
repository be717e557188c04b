"""Reading a JSON request body into a wire model, with Paddler's status codes.

Bodies are read with a size cap (413 past it, before the rest is even read), must be declared
``application/json`` and must validate; every failure is a plain-text 4xx naming the problem.
"""

from __future__ import annotations

from typing import Any, TypeVar

from starlette.requests import Request

from paddler_tui.protocol import codec
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.server.balancer.request_body import BodyError

T = TypeVar("T")


async def read_json_body(request: Request, model: Any, *, limit: int) -> Any:
    """Parse the body as ``model``; raise :class:`BodyError` (400/413) on any problem."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise BodyError(400, "Content type error: expected Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"Request body is larger than the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyError(413, f"Request body is larger than the limit of {limit} bytes")
    try:
        return codec.decode(codec.adapter_for(model), bytes(body))
    except ProtocolError as error:
        raise BodyError(400, f"Json deserialize error: {error}") from error
