"""``--api-key`` (issue 8, item 3): every route but /health and every socket require it.

A real balancer started with the flag answers 401 to each route of its three OpenAPI documents
without the key or with another one, and refuses the handshake of each socket (403); agents,
``serve``'s local agents, the client library and the TUI's services all send it.
"""

from __future__ import annotations

import asyncio
import hmac
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from paddler_tui.api_key import API_KEY_ENV
from paddler_tui.cli import balancer_settings, build_parser
from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.errors import HttpStatusError
from paddler_tui.client.inference_socket import InferenceSocket
from paddler_tui.client.management import ManagementClient
from paddler_tui.client.monitor import monitor_updates
from paddler_tui.client.monitoring.feed import FeedConnected, monitor_feed
from paddler_tui.net_address import HostPort
from paddler_tui.protocol.embedding import L2
from paddler_tui.protocol.envelope import GenerateEmbeddingBatch
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from paddler_tui.server.balancer.web import auth
from paddler_tui.server.local_agents import LocalAgents, LocalAgentsSpec
from paddler_tui.ui import embedded
from paddler_tui.ui.app import PaddlerTuiApp
from paddler_tui.ui.embedded import EmbeddedCluster, StartOutcome
from tests.support.cluster import AgentProcess, BalancerProcess, Cluster
from tests.ui.chat_app import tui_options

KEY = "the-right-key"
SERVICES = ("inference", "management", "openai")


class KeyedBalancer:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.urls = {
            "inference": cluster.b.inference_url,
            "management": cluster.b.management_url,
            "openai": cluster.b.openai_url,
        }

    @property
    def b(self) -> BalancerProcess:
        return self.cluster.b

    def socket_urls(self) -> list[str]:
        return [
            self.b.inference_socket_url,
            self.b.agent_socket_url("some-agent"),
            f"ws://{self.b.management_addr}/api/v1/monitor_socket",
        ]


@pytest.fixture(scope="module")
def keyed(make_module_cluster: Callable[[str], Cluster]) -> KeyedBalancer:
    """A balancer given the key by flag (its clients take it from the cluster's env)."""
    cluster = make_module_cluster("api-key")
    cluster.env[API_KEY_ENV] = KEY
    cluster.start_balancer("--api-key", KEY, openai=True)
    return KeyedBalancer(cluster)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def operations(keyed: KeyedBalancer, service: str) -> Iterator[tuple[str, str]]:
    document = httpx.get(f"{keyed.urls[service]}/openapi.json", headers=bearer(KEY)).json()
    for path, methods in document["paths"].items():
        for method in methods:
            yield method.upper(), path.replace("{agent_id}", "a").replace("{model_id}", "m")


@pytest.mark.slow
@pytest.mark.parametrize("service", SERVICES)
def test_every_route_but_health_refuses_a_missing_or_wrong_key(
    keyed: KeyedBalancer, service: str
) -> None:
    base = keyed.urls[service]
    routes = [*operations(keyed, service), ("GET", "/openapi.json")]
    assert len(routes) > 2
    for method, path in routes:
        for headers in ({}, bearer("wrong"), bearer(KEY.upper()), {"Authorization": KEY}):
            response = httpx.request(method, base + path, headers=headers, timeout=5)
            if path == "/health":
                assert response.status_code == 200, (method, path)
                continue
            assert response.status_code == 401, (method, path, headers)
            if service == "openai":
                assert response.json()["error"]["code"] == "invalid_api_key"
            else:
                assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_the_key_opens_the_routes_in_any_case_of_the_scheme(keyed: KeyedBalancer) -> None:
    for scheme in ("Bearer", "bearer", "BEARER"):
        headers = {"Authorization": f"{scheme} {KEY}"}
        response = httpx.get(f"{keyed.urls['management']}/api/v1/agents", headers=headers)
        assert response.status_code == 200
        assert httpx.get(f"{keyed.urls['openai']}/v1/models", headers=headers).status_code == 200
    # No agents: the request waits in the buffer, but its stream has begun.
    with httpx.stream(
        "POST",
        f"{keyed.urls['inference']}/api/v1/continue_from_raw_prompt",
        json={"raw_prompt": "Hi", "max_tokens": 1},
        headers=bearer(KEY),
        timeout=5,
    ) as response:
        assert response.status_code == 200


@pytest.mark.slow
async def test_every_socket_refuses_the_handshake_without_the_key(keyed: KeyedBalancer) -> None:
    for url in keyed.socket_urls():
        for headers in ({}, bearer("wrong")):
            with pytest.raises(InvalidStatus) as refused:
                await connect(url, additional_headers=headers)
            assert refused.value.response.status_code == 403
    for url in keyed.socket_urls()[::2]:  # the agent socket would register an agent
        async with connect(url, additional_headers=bearer(KEY)) as socket:
            await socket.ping()
    assert "Traceback" not in keyed.b.log_text()


@pytest.mark.slow
async def test_agents_with_the_key_join_and_an_agent_without_it_is_kept_out(
    keyed: KeyedBalancer,
) -> None:
    cluster = keyed.cluster
    without_key = {k: v for k, v in cluster.env.items() if k != API_KEY_ENV}

    def start(name: str, *flags: str, env: dict[str, str]) -> AgentProcess:
        log = cluster.directory / f"{name}.log"
        return AgentProcess(keyed.b.management_addr, *flags, slots=1, name=name, log=log, env=env)

    flagged = start("by-flag", "--api-key", KEY, env=without_key)
    by_env = start("by-env", env=cluster.env)
    refused = start("no-key", env=without_key)
    cluster.agents += [flagged, by_env, refused]
    try:
        deadline = time.monotonic() + 20
        while sorted(str(a.name) for a in cluster.agents_snapshot().agents) != [
            "by-env",
            "by-flag",
        ]:
            assert time.monotonic() < deadline, cluster.dump_logs()
            await asyncio.sleep(0.1)
        while refused.log_text().count("HTTP 403") < 2:  # it keeps trying
            assert time.monotonic() < deadline, refused.log_text()
            await asyncio.sleep(0.1)
        assert refused.running()
        assert [a.name for a in cluster.agents_snapshot().agents if a.name == "no-key"] == []
    finally:
        for agent in (flagged, by_env, refused):
            agent.stop()
            cluster.agents.remove(agent)


@pytest.mark.slow
async def test_serve_hands_its_key_to_its_local_agents(
    keyed: KeyedBalancer, tmp_path: Path
) -> None:
    spec = LocalAgentsSpec(agents=1, slots=1)
    agents = LocalAgents(spec, HostPort.parse(keyed.b.management_addr), tmp_path, api_key=KEY)
    agents.start()
    try:
        deadline = time.monotonic() + 20
        while "agent-1" not in [a.name for a in keyed.cluster.agents_snapshot().agents]:
            assert time.monotonic() < deadline, (tmp_path / "agent-1.log").read_text()
            await asyncio.sleep(0.1)
        # Through the environment, never on the command line.
        assert KEY not in str(agents.processes[0].args)
    finally:
        await agents.stop()


@pytest.mark.slow
async def test_the_client_library_and_the_tui_services_send_the_key(
    keyed: KeyedBalancer,
) -> None:
    inference, management = keyed.b.inference_addr, keyed.b.management_addr
    services = BalancerServices(inference, management, api_key=KEY)
    try:
        assert (await services.management.agents()).agents is not None
        socket = await services.inference_socket()
        stream = await socket.request(
            GenerateEmbeddingBatch(
                value=GenerateEmbeddingBatchParams(input_batch=[], normalization_method=L2())
            )
        )
        assert [message async for message in stream]  # refused in token mode, then Done
        feed = monitor_feed(services.management, management)
        assert await asyncio.wait_for(anext(feed), 5) == FeedConnected("monitor socket")
        assert isinstance(feed, AsyncGenerator)
        await feed.aclose()
    finally:
        await services.aclose()

    unkeyed = ManagementClient(management)
    with pytest.raises(HttpStatusError) as refused:
        await unkeyed.agents()
    assert refused.value.status_code == 401
    await unkeyed.aclose()
    with pytest.raises(HttpStatusError) as refused:
        await InferenceSocket.connect(inference, api_key="wrong")
    assert refused.value.status_code == 403
    with pytest.raises(HttpStatusError) as refused:
        await anext(monitor_updates(management))
    assert refused.value.status_code == 403


def test_the_tui_app_uses_the_key_of_its_options(tmp_path: Path) -> None:
    options = replace(tui_options("127.0.0.1:9", "127.0.0.1:9", tmp_path), api_key=KEY)
    app = PaddlerTuiApp(options)
    assert app.services.api_key == KEY
    assert KEY not in repr(app.options)


async def test_the_embedded_cluster_hands_the_tui_key_to_serve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    printing_the_key = [sys.executable, "-c", f"import os; print(os.environ['{API_KEY_ENV}'])"]
    monkeypatch.setattr(embedded, "_command", lambda *_: printing_the_key)
    outcome = await EmbeddedCluster("127.0.0.1:9", "127.0.0.1:9", api_key=KEY).start()
    assert outcome == StartOutcome(True, KEY)


# The flag and the variable.


@pytest.mark.parametrize(
    "command",
    [
        ["balancer"],
        ["serve"],
        ["agent", "--management-addr", "127.0.0.1:1", "--slots", "1"],
        ["status"],
        [],
    ],
    ids=["balancer", "serve", "agent", "status", "tui"],
)
def test_every_command_takes_the_key_by_flag_or_variable(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert build_parser().parse_args(command).api_key is None
    flag = [*command[:1], "--api-key", "by-flag", *command[1:]]
    assert build_parser().parse_args(flag).api_key == "by-flag"
    monkeypatch.setenv(API_KEY_ENV, "by-variable")
    assert build_parser().parse_args(command).api_key == "by-variable"
    monkeypatch.setenv(API_KEY_ENV, "")
    assert build_parser().parse_args(command).api_key is None


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["balancer", "--api-key", " "])


def test_the_key_is_never_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(API_KEY_ENV, "s3cret-value")
    settings = balancer_settings(build_parser().parse_args(["balancer"]))
    assert settings.api_key == "s3cret-value"
    assert "s3cret-value" not in repr(settings)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["balancer", "--help"])
    assert "s3cret-value" not in capsys.readouterr().out


# The comparison.


@pytest.mark.parametrize(
    ("values", "authorized"),
    [
        ([f"Bearer {KEY}"], True),
        ([f"bearer   {KEY} "], True),
        ([f"Bearer {KEY}x"], False),
        ([f"Basic {KEY}"], False),
        ([KEY], False),
        ([], False),
        ([f"Bearer {KEY}", f"Bearer {KEY}"], False),
    ],
)
def test_authorization_header_forms(values: list[str], authorized: bool) -> None:
    headers = Headers(raw=[(b"authorization", value.encode()) for value in values])
    assert auth.is_authorized(headers, KEY) is authorized


def test_the_key_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def compare_digest(left: bytes, right: bytes) -> bool:
        compared.append((left, right))
        return original(left, right)

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)  # the module auth calls
    assert auth.is_authorized(Headers({"authorization": "Bearer nope"}), KEY) is False
    assert auth.is_authorized(Headers({"authorization": f"Bearer {KEY}"}), KEY) is True
    assert len(compared) == 2
