"""``--api-key``: every route but ``/health``, and every socket, require ``Authorization: Bearer``.

``/health`` stays open so liveness probes need no secret; it tells nothing but "OK". The check is
an ASGI middleware inside CORS, so browsers' preflights (which never carry credentials) still get
their answer and a refusal still carries the CORS headers. HTTP requests are refused with 401; a
socket is closed before it is accepted, which the server answers with 403 at the handshake
(uvicorn logs a 401 denial response there as an error, so that one is not used).
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from paddler_tui.server.balancer.web.openapi import ServiceApp

OPEN_PATHS = frozenset({"/health"})
POLICY_VIOLATION = 1008
UNAUTHORIZED = "Unauthorized: send the balancer's API key as `Authorization: Bearer KEY`"


def _digest(value: bytes) -> bytes:
    # Comparing fixed-length digests keeps even the key's length out of the timing.
    return hashlib.sha256(value).digest()


def is_authorized(headers: Headers, api_key: str) -> bool:
    """Exactly one ``Authorization`` header, scheme ``Bearer`` (any case), the key compared in
    constant time."""
    values = headers.getlist("authorization")
    if len(values) != 1:
        return False
    scheme, _, token = values[0].partition(" ")
    matches = hmac.compare_digest(_digest(token.strip().encode()), _digest(api_key.encode()))
    return scheme.lower() == "bearer" and matches


def plain_refusal() -> Response:
    return PlainTextResponse(UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": "Bearer"})


class ApiKeyMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str, refusal: Response) -> None:
        self.app = app
        self._api_key = api_key
        self._refusal = refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and scope["path"] not in OPEN_PATHS
            and not is_authorized(Headers(scope=scope), self._api_key)
        ):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": POLICY_VIOLATION})
            else:
                await self._refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


def require_api_key(app: ServiceApp, api_key: str | None, refusal: Response | None = None) -> None:
    """Guard ``app`` with ``api_key`` (nothing without one); add it before the CORS middleware."""
    if api_key is not None:
        app.open_paths = OPEN_PATHS
        app.add_middleware(
            ApiKeyMiddleware,
            api_key=api_key,
            refusal=refusal if refusal is not None else plain_refusal(),
        )
