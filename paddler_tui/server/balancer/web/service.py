"""How each of the three services is put together: one app around the service's own routes.

Every service gets the same frame: the API key (``--api-key``), CORS for its own list of
origins, an open ``/health``, and its routes from an :class:`~fastapi.APIRouter`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.middleware.cors import CORSMiddleware

from paddler_tui.server.balancer.web.auth import require_api_key
from paddler_tui.server.balancer.web.cors import cors_middleware_options
from paddler_tui.server.balancer.web.openapi import ServiceApp

ExceptionHandler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


async def health() -> str:
    return "OK"


def build_service(
    title: str,
    routes: APIRouter,
    *,
    api_key: str | None,
    cors_allowed_hosts: Sequence[str],
    refusal: Response | None = None,
    exception_handlers: Mapping[type[Exception], ExceptionHandler] | None = None,
) -> ServiceApp:
    """The app for one service; ``refusal`` answers a wrong key (plain text by default)."""
    app = ServiceApp(title=title, docs_url=None, redoc_url=None)
    for exception, handler in (exception_handlers or {}).items():
        app.add_exception_handler(exception, handler)
    # The key is checked inside CORS, so preflights and refusals still carry CORS headers.
    require_api_key(app, api_key, refusal)
    if cors_allowed_hosts:
        app.add_middleware(CORSMiddleware, **cors_middleware_options(list(cors_allowed_hosts)))
    app.add_api_route("/health", health, methods=["GET"], response_class=PlainTextResponse)
    app.include_router(routes)
    return app
