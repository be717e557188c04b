"""Buffering against real processes: overflow, arrival order, one slot, timeouts, late agents.

Acceptance bullets 1 (one slot, 64 callers), 2 (max 2 buffered) and 3 (no agents; an agent that
joins later); behaviour spec §1.3.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope, GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ResponseEnvelope,
    decode_inference_server_message,
)
from tests.support.cluster import (
    Cluster,
    busy,
    collect,
    deterministic_state,
    http_client,
    ndjson,
    raw_prompt_body,
    watch_agents,
    watch_buffer,
)

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]
LONG_MS = "60000"


def is_done(message: InferenceServerMessage) -> bool:
    return (
        isinstance(message, ResponseEnvelope)
        and isinstance(message.response, GeneratedToken)
        and isinstance(message.response.value, Done)
    )


def succeeded(messages: list[InferenceServerMessage]) -> bool:
    return bool(messages) and is_done(messages[-1])


def error_of(messages: list[InferenceServerMessage]) -> ErrorDetails:
    (message,) = messages
    assert isinstance(message, ErrorEnvelope), message
    return message.error


async def test_one_running_two_buffered_and_the_fourth_overflows_at_once(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("max-two").start(
        "--max-buffered-requests", "2", "--buffered-request-timeout", LONG_MS, agents=1, slots=1
    )
    url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"
    loop = asyncio.get_running_loop()
    timeline: list[tuple[float, str, InferenceServerMessage]] = []

    async def request(label: str, max_tokens: int) -> list[InferenceServerMessage]:
        messages = []
        async for message in ndjson(client, url, raw_prompt_body(max_tokens)):
            timeline.append((loop.time(), label, message))
            messages.append(message)
        return messages

    async with (
        http_client() as client,
        watch_agents(cluster.b) as agents,
        watch_buffer(cluster.b) as buffer,
    ):
        running = asyncio.create_task(request("running", 1000))
        await agents.until(lambda s: busy(s) == 1)
        while not timeline:  # it streams: the agent will hear the stop when its client leaves
            await asyncio.sleep(0.01)
        first = asyncio.create_task(request("first", 4))
        await buffer.until(lambda s: s.buffered_requests_current == 1)
        second = asyncio.create_task(request("second", 4))
        await buffer.until(lambda s: s.buffered_requests_current == 2)

        overflow = await collect(client, url, raw_prompt_body(4))

        # At once: the slot is still taken and both places are still held.
        assert not running.done()
        assert error_of(overflow) == ErrorDetails(
            code=503, description="Buffered requests overflow"
        )
        assert buffer.latest.buffered_requests_current == 2

        running.cancel()  # the client leaves; the slot goes to the oldest waiter
        first_messages, second_messages = await asyncio.gather(first, second)

    assert succeeded(first_messages)
    assert succeeded(second_messages)
    order = [(label, is_done(m)) for _, label, m in timeline if label != "running"]
    first_done = order.index(("first", True))
    assert first_done < order.index(("second", False))  # second starts only after first ends


async def test_sixty_four_callers_never_get_more_than_the_one_slot(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("one-slot").start(
        "--max-buffered-requests", "64", "--buffered-request-timeout", "120000", agents=1, slots=1
    )
    url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"

    async with http_client() as client, watch_agents(cluster.b) as agents:
        streams = await asyncio.gather(
            *(collect(client, url, raw_prompt_body(1, "Hi")) for _ in range(64))
        )
        await agents.until(lambda s: busy(s) == 0)

    assert all(succeeded(messages) for messages in streams)
    assert max(busy(s) for s in agents.snapshots) == 1


async def test_max_buffered_zero_refuses_at_once(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("no-buffer")
    cluster.start_balancer("--max-buffered-requests", "0", "--buffered-request-timeout", LONG_MS)

    async with http_client() as client:
        url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"
        messages = await asyncio.wait_for(collect(client, url, raw_prompt_body(4)), 10)

    assert error_of(messages) == ErrorDetails(code=503, description="Buffered requests overflow")


async def test_without_agents_the_buffer_timeout_is_a_504_no_sooner_than_it(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("no-agents")
    cluster.start_balancer("--buffered-request-timeout", "300")
    cluster.put_state(deterministic_state())
    loop = asyncio.get_running_loop()
    timed_out = ErrorDetails(code=504, description="Waiting for available slot timed out")

    async with http_client() as client:
        started = loop.time()
        url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"
        messages = await collect(client, url, raw_prompt_body(4))
        http_elapsed = loop.time() - started

    async with connect(cluster.b.inference_socket_url) as socket:
        started = loop.time()
        await socket.send(
            '{"Request":{"id":"ws-1","request":{"ContinueFromRawPrompt":'
            '{"raw_prompt":"Hi","max_tokens":4}}}}'
        )
        frame = decode_inference_server_message(await socket.recv())
        socket_elapsed = loop.time() - started

    assert error_of(messages) == timed_out
    assert http_elapsed >= 0.3
    assert frame == ErrorEnvelope(request_id="ws-1", error=timed_out)
    assert socket_elapsed >= 0.3


async def test_a_buffered_request_completes_once_an_agent_joins(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("late-agent")
    cluster.start_balancer("--buffered-request-timeout", LONG_MS)
    cluster.put_state(deterministic_state())
    url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"

    async with http_client() as client, watch_buffer(cluster.b) as buffer:
        waiting = asyncio.create_task(collect(client, url, raw_prompt_body(4)))
        await buffer.until(lambda s: s.buffered_requests_current == 1)
        cluster.start_agent(slots=1, name="latecomer")
        messages = await asyncio.wait_for(waiting, 60)
        await buffer.until(lambda s: s.buffered_requests_current == 0)

    assert succeeded(messages)
    assert {m.generated_by for m in messages if isinstance(m, ResponseEnvelope)} == {"latecomer"}
    assert any(
        isinstance(m, ResponseEnvelope)
        and isinstance(m.response, GeneratedToken)
        and isinstance(m.response.value, ContentToken)
        for m in messages
    )
