from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from paddler_tui.server.balancer.web.cors import cors_middleware_options

ALLOWED_ORIGIN = "http://example.com"


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("OK")


def client() -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/health", health)],
        middleware=[Middleware(CORSMiddleware, **cors_middleware_options([ALLOWED_ORIGIN]))],
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def preflight(origin: str) -> httpx.Response:
    async with client() as http:
        return await http.options(
            "/health", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )


async def test_preflight_from_an_allowed_origin_is_echoed() -> None:
    response = await preflight(ALLOWED_ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["access-control-max-age"] == "3600"
    assert set(response.headers["access-control-allow-methods"].split(", ")) == {
        "DELETE",
        "GET",
        "POST",
        "PUT",
        "OPTIONS",
    }
    allowed_headers = response.headers["access-control-allow-headers"].lower().split(", ")
    assert {"accept", "authorization", "content-type"} <= set(allowed_headers)


async def test_preflight_from_another_origin_is_not_allowed() -> None:
    for origin in ("http://other.example", "example.com", "https://example.com"):
        response = await preflight(origin)
        assert "access-control-allow-origin" not in response.headers


async def test_simple_request_from_an_allowed_origin_is_echoed() -> None:
    async with client() as http:
        response = await http.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert response.text == "OK"
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
