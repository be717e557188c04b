"""The OpenAI app in process (no sockets): CORS from the inference list, routes without agents."""

from __future__ import annotations

import httpx

from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.state_database import MemoryStateDatabase
from paddler_tui.server.balancer.web.openai_service import create_openai_app

ALLOWED_ORIGIN = "http://example.com"


def client(*allowed_origins: str) -> httpx.AsyncClient:
    settings = BalancerSettings(
        inference_addr=HostPort.parse("127.0.0.1:1"),
        management_addr=HostPort.parse("127.0.0.1:2"),
        inference_cors_allowed_hosts=allowed_origins,
        management_cors_allowed_hosts=("http://management.example",),
    )
    app = create_openai_app(Balancer(settings, MemoryStateDatabase()))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def preflight(http: httpx.AsyncClient, origin: str) -> httpx.Response:
    return await http.options(
        "/v1/chat/completions",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )


async def test_cors_uses_the_inference_origins() -> None:
    async with client(ALLOWED_ORIGIN) as http:
        allowed = await preflight(http, ALLOWED_ORIGIN)
        other = await preflight(http, "http://management.example")
    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-origin" not in other.headers


async def test_no_cross_origin_requests_without_origins() -> None:
    async with client() as http:
        response = await http.get("/health", headers={"Origin": ALLOWED_ORIGIN})
    assert response.text == "OK"
    assert "access-control-allow-origin" not in response.headers


async def test_no_models_without_agents() -> None:
    async with client() as http:
        response = await http.get("/v1/models")
    assert response.json() == {"object": "list", "data": []}


async def test_wrong_content_type_is_an_invalid_request() -> None:
    async with client() as http:
        response = await http.post("/v1/chat/completions", content=b"{}")
    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "Content type error: expected Content-Type: application/json",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
