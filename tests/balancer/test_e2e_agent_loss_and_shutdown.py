"""An agent killed mid-stream, and the balancer itself stopped with SIGTERM (acceptance bullet 5;
issue item 5; behaviour spec §1.4-§1.5)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from typing import TypeGuard

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope, GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from tests.support.cluster import (
    Cluster,
    busy,
    collect,
    http_client,
    ndjson,
    raw_prompt_body,
    socket_request,
    watch_agents,
    watch_buffer,
)

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]
LONG_MS = "60000"
RAW_PROMPT = "/api/v1/continue_from_raw_prompt"
SHUTTING_DOWN = {"code": 503, "description": "balancer is shutting down"}
SHUTTING_DOWN_ERROR = ErrorDetails(code=503, description="balancer is shutting down")


def is_token(message: object) -> TypeGuard[ResponseEnvelope]:
    return (
        isinstance(message, ResponseEnvelope)
        and isinstance(message.response, GeneratedToken)
        and isinstance(message.response.value, ContentToken)
    )


async def test_an_agent_killed_mid_stream_is_a_502_within_a_second_and_the_rest_serve_on(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("agent-killed").start(
        "--inference-item-timeout",
        LONG_MS,
        "--buffered-request-timeout",
        LONG_MS,
        agents=2,
        slots=1,
    )
    url = f"{cluster.b.inference_url}{RAW_PROMPT}"
    loop = asyncio.get_running_loop()

    async with watch_agents(cluster.b) as agents, http_client() as client:
        victim_stream, survivor_stream = (ndjson(client, url, raw_prompt_body(1000)) for _ in "ab")
        victim_first, survivor_first = await asyncio.gather(
            anext(victim_stream), anext(survivor_stream)
        )
        assert isinstance(victim_first, ResponseEnvelope)
        assert isinstance(survivor_first, ResponseEnvelope)
        victim, survivor = victim_first.generated_by, survivor_first.generated_by
        assert {victim, survivor} == {"agent-1", "agent-2"}

        killed_at = loop.time()
        cluster.agent_named(str(victim)).signal(signal.SIGKILL)
        rest = [message async for message in victim_stream]
        elapsed = loop.time() - killed_at

        assert rest[-1] == ErrorEnvelope(
            request_id=victim_first.request_id,
            error=ErrorDetails(code=502, description="Agent controller connection closed"),
        )
        assert all(is_token(m) for m in rest[:-1])
        assert elapsed <= 1.0

        # The other agent's stream goes on; when its client leaves, its slot comes back.
        for _ in range(5):
            message = await anext(survivor_stream)
            assert is_token(message)
            assert message.generated_by == survivor
        await survivor_stream.aclose()
        await agents.until(
            lambda s: [a.name for a in s.agents] == [survivor] and busy(s) == 0, timeout=5
        )

        # ...and it keeps serving new requests.
        served = await collect(client, url, raw_prompt_body(4))
        responses = [m for m in served if isinstance(m, ResponseEnvelope)]
        assert responses == served
        assert {m.generated_by for m in responses} == {survivor}
        last = served[-1]
        assert isinstance(last, ResponseEnvelope)
        assert isinstance(last.response, GeneratedToken)
        assert isinstance(last.response.value, Done)
        await agents.until(lambda s: busy(s) == 0)


async def test_sigterm_answers_running_and_buffered_clients_503_and_exits_within_five_seconds(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("sigterm").start(
        "--inference-item-timeout",
        LONG_MS,
        "--buffered-request-timeout",
        LONG_MS,
        agents=1,
        slots=2,
    )
    url = f"{cluster.b.inference_url}{RAW_PROMPT}"
    loop = asyncio.get_running_loop()

    async with (
        watch_agents(cluster.b) as agents,
        watch_buffer(cluster.b) as buffer,
        http_client() as client,
        connect(cluster.b.inference_socket_url) as socket,
    ):
        running_http = ndjson(client, url, raw_prompt_body(1000))
        assert is_token(await anext(running_http))
        await socket.send(socket_request("running", 1000))
        await agents.until(lambda s: busy(s) == 2, timeout=10)
        buffered_http = asyncio.create_task(collect(client, url, raw_prompt_body(4)))
        await buffer.until(lambda s: s.buffered_requests_current == 1)
        await socket.send(socket_request("buffered", 4))
        await buffer.until(lambda s: s.buffered_requests_current == 2)

        stopped_at = loop.time()
        cluster.b.signal(signal.SIGTERM)

        running_rest = [message async for message in running_http]
        assert isinstance(running_rest[-1], ErrorEnvelope)
        assert running_rest[-1].error == SHUTTING_DOWN_ERROR
        (buffered_error,) = await buffered_http
        assert isinstance(buffered_error, ErrorEnvelope)
        assert buffered_error.error == SHUTTING_DOWN_ERROR

        errors: dict[str, object] = {}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(await socket.recv())
                if "Error" in frame:
                    errors[frame["Error"]["request_id"]] = frame["Error"]["error"]
        assert errors == {"running": SHUTTING_DOWN, "buffered": SHUTTING_DOWN}
        # Paddler's close: after every request's error, 1001 "Server shutting down".
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "Server shutting down")

        exit_code = await asyncio.to_thread(cluster.b.wait, 5.0)
        assert exit_code == 0
        assert loop.time() - stopped_at <= 5.0
        # The SSE streams end with the balancer instead of holding its shutdown up.
        await asyncio.wait_for(agents.ended.wait(), 1)
        await asyncio.wait_for(buffer.ended.wait(), 1)
        assert "Traceback" not in cluster.b.log_text()


async def test_shutdown_with_open_sse_subscribers_ends_their_streams_within_a_second(
    make_cluster: MakeCluster,
) -> None:
    """Paddler's balancer_shutdown_with_open_sse_subscriber_completes_within_one_second."""
    cluster = make_cluster("sse-shutdown")
    cluster.start_balancer()
    loop = asyncio.get_running_loop()

    async with watch_agents(cluster.b) as agents, watch_buffer(cluster.b) as buffer:
        stopped_at = loop.time()
        cluster.b.signal(signal.SIGTERM)

        await asyncio.wait_for(agents.ended.wait(), 1)
        await asyncio.wait_for(buffer.ended.wait(), 1)
        assert await asyncio.to_thread(cluster.b.wait, 1.0) == 0
        assert loop.time() - stopped_at <= 1.0
    assert "Traceback" not in cluster.b.log_text()
