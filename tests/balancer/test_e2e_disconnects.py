"""Clients that leave: the slot or the buffer place comes back within 1 s (acceptance bullet 6).

One real agent with 2 slots; item and buffer timeouts are a minute, so nothing but the client
leaving can free anything within the 1 s the issue allows. Every release is watched on the
SSE streams (behaviour spec §1.4). ``/metrics`` is read live here too (acceptance bullet 8).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx
import pytest
from pydantic import BaseModel
from websockets.asyncio.client import ClientConnection, connect

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot, BufferedRequestsSnapshot
from tests.support.cluster import (
    Cluster,
    SnapshotWatcher,
    busy,
    first_ndjson_line,
    http_client,
    raw_post,
    raw_prompt_body,
    socket_request,
    socket_stop,
    watch_agents,
    watch_buffer,
)

pytestmark = pytest.mark.slow

LONG_MS = "60000"
RELEASE_S = 1.0
RAW_PROMPT = "/api/v1/continue_from_raw_prompt"

T = TypeVar("T", bound=BaseModel)
Agents = SnapshotWatcher[AgentControllerPoolSnapshot]
Buffer = SnapshotWatcher[BufferedRequestsSnapshot]


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    return make_module_cluster("disconnects").start(
        "--inference-item-timeout",
        LONG_MS,
        "--buffered-request-timeout",
        LONG_MS,
        agents=1,
        slots=2,
    )


@pytest.fixture
async def agents(cluster: Cluster) -> AsyncIterator[Agents]:
    async with watch_agents(cluster.b) as watcher:
        # A previous test's drain may still be finishing.
        await watcher.until(lambda s: busy(s) == 0, timeout=10)
        yield watcher


@pytest.fixture
async def buffer(cluster: Cluster) -> AsyncIterator[Buffer]:
    async with watch_buffer(cluster.b) as watcher:
        await watcher.until(lambda s: s.buffered_requests_current == 0)
        yield watcher


async def released_within(watcher: SnapshotWatcher[T], predicate: Callable[[T], bool]) -> float:
    """Seconds until the stream shows ``predicate``; fails past the 1 s release window."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await watcher.until(predicate, timeout=RELEASE_S)
    return loop.time() - started


async def first_frames_for(socket: ClientConnection, *request_ids: str) -> None:
    """Until every one of the requests has streamed a token: each is running on the agent.

    Leaving only after that keeps these tests about leaving mid-stream. (A stop that reaches the
    agent in the same read as its request is lost there; see the report on the agent.)
    """
    waiting = set(request_ids)
    while waiting:
        waiting.discard(json.loads(await socket.recv()).get("Response", {}).get("request_id"))


@contextlib.asynccontextmanager
async def occupied(cluster: Cluster, agents: Agents) -> AsyncIterator[ClientConnection]:
    """Both slots busy with long requests on one socket, freed when the block ends."""
    async with connect(cluster.b.inference_socket_url) as socket:
        for index in range(2):
            await socket.send(socket_request(f"long-{index}", 1000))
        await first_frames_for(socket, "long-0", "long-1")
        await agents.until(lambda s: busy(s) == 2, timeout=10)
        yield socket


async def test_http_client_leaving_mid_stream_frees_the_slot(
    cluster: Cluster, agents: Agents
) -> None:
    async with (
        http_client() as client,
        client.stream(
            "POST", f"{cluster.b.inference_url}{RAW_PROMPT}", json=raw_prompt_body(1000)
        ) as response,
    ):
        async for line in response.aiter_lines():
            assert "ContentToken" in line
            break
        await agents.until(lambda s: busy(s) == 1)

    await released_within(agents, lambda s: busy(s) == 0)


async def test_http_half_close_mid_stream_frees_the_slot(cluster: Cluster, agents: Agents) -> None:
    reader, writer = await raw_post(cluster.b.inference_addr, RAW_PROMPT, raw_prompt_body(1000))
    try:
        await first_ndjson_line(reader)
        await agents.until(lambda s: busy(s) == 1)
        writer.write_eof()
        await released_within(agents, lambda s: busy(s) == 0)
    finally:
        writer.close()


async def test_socket_closing_mid_stream_frees_the_slot(cluster: Cluster, agents: Agents) -> None:
    async with connect(cluster.b.inference_socket_url) as socket:
        await socket.send(socket_request("r-1", 1000))
        await first_frames_for(socket, "r-1")
        await agents.until(lambda s: busy(s) == 1)

    await released_within(agents, lambda s: busy(s) == 0)


async def test_stop_responding_to_frees_one_slot_and_the_sibling_keeps_going(
    cluster: Cluster, agents: Agents
) -> None:
    async with connect(cluster.b.inference_socket_url) as socket:
        await socket.send(socket_request("stopped", 1000))
        await socket.send(socket_request("sibling", 1000))
        await first_frames_for(socket, "stopped", "sibling")
        await agents.until(lambda s: busy(s) == 2, timeout=10)

        await socket.send(socket_stop("stopped"))
        await released_within(agents, lambda s: busy(s) == 1)

        # The sibling still streams; the stopped request gets nothing more, not even its Done.
        frames = [json.loads(await socket.recv()) for _ in range(20)]
        sibling = [f for f in frames if f["Response"]["request_id"] == "sibling"]
        assert len(sibling) >= 10
        assert all("ContentToken" in f["Response"]["response"]["GeneratedToken"] for f in frames)
        await socket.send(socket_stop("sibling"))
        await released_within(agents, lambda s: busy(s) == 0)


async def test_http_client_leaving_while_buffered_frees_its_place(
    cluster: Cluster, agents: Agents, buffer: Buffer
) -> None:
    async with occupied(cluster, agents):
        async with http_client() as client:
            url = f"{cluster.b.inference_url}{RAW_PROMPT}"
            waiting = asyncio.create_task(client.post(url, json=raw_prompt_body(4)))
            await buffer.until(lambda s: s.buffered_requests_current == 1)
            waiting.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await waiting

        await released_within(buffer, lambda s: s.buffered_requests_current == 0)
        assert busy(agents.latest) == 2  # it never took a slot


async def test_http_half_close_while_buffered_frees_its_place(
    cluster: Cluster, agents: Agents, buffer: Buffer
) -> None:
    async with occupied(cluster, agents):
        _, writer = await raw_post(cluster.b.inference_addr, RAW_PROMPT, raw_prompt_body(4))
        try:
            await buffer.until(lambda s: s.buffered_requests_current == 1)
            writer.write_eof()
            await released_within(buffer, lambda s: s.buffered_requests_current == 0)
        finally:
            writer.close()
        assert busy(agents.latest) == 2


async def test_socket_closing_while_buffered_frees_its_place(
    cluster: Cluster, agents: Agents, buffer: Buffer
) -> None:
    async with occupied(cluster, agents):
        async with connect(cluster.b.inference_socket_url) as waiting:
            await waiting.send(socket_request("w-1", 4))
            await buffer.until(lambda s: s.buffered_requests_current == 1)

        await released_within(buffer, lambda s: s.buffered_requests_current == 0)
        assert busy(agents.latest) == 2


async def test_stop_responding_to_while_buffered_frees_its_place(
    cluster: Cluster, agents: Agents, buffer: Buffer
) -> None:
    async with occupied(cluster, agents) as socket:
        await socket.send(socket_request("w-1", 4))
        await buffer.until(lambda s: s.buffered_requests_current == 1)

        await socket.send(socket_stop("w-1"))

        await released_within(buffer, lambda s: s.buffered_requests_current == 0)
        assert busy(agents.latest) == 2


def gauges(text: str) -> dict[str, float]:
    """Paddler's gauges; paddler-tui's counters follow them."""
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()
            values[name] = float(value)
    return values


async def test_metrics_show_live_slot_and_buffer_values(
    cluster: Cluster, agents: Agents, buffer: Buffer
) -> None:
    url = f"{cluster.b.management_url}/metrics"
    async with http_client() as client:
        idle = await client.get(url)
        async with occupied(cluster, agents) as socket:
            await socket.send(socket_request("w-1", 4))
            await buffer.until(lambda s: s.buffered_requests_current == 1)
            loaded = await client.get(url)
        await agents.until(lambda s: busy(s) == 0, timeout=10)
        await buffer.until(lambda s: s.buffered_requests_current == 0)
        after = await client.get(url)

    assert loaded.headers["content-type"].startswith("text/plain; version=0.0.4")
    for response, expected in (
        (idle, (0, 2, 0)),
        (loaded, (2, 2, 1)),
        (after, (0, 2, 0)),
    ):
        assert gauges(response.text) == dict(
            zip(
                ("paddler_slots_processing", "paddler_slots_total", "paddler_requests_buffered"),
                expected,
                strict=True,
            )
        )


async def test_cancelling_the_running_requests_serves_every_buffered_one(
    agents: Agents, buffer: Buffer, cluster: Cluster
) -> None:
    """Paddler's inference_socket_burst_cancellation_serves_every_buffered_request."""
    async with occupied(cluster, agents) as socket:
        for index in range(2):
            await socket.send(socket_request(f"waiting-{index}", 4))
        await buffer.until(lambda s: s.buffered_requests_current == 2)

        for index in range(2):
            await socket.send(socket_stop(f"long-{index}"))

        done: set[str] = set()
        tokens: set[str] = set()
        async with asyncio.timeout(30):
            while len(done) < 2:
                response = json.loads(await socket.recv())["Response"]
                if response["request_id"].startswith("waiting"):
                    result = response["response"]["GeneratedToken"]
                    (done if "Done" in result else tokens).add(response["request_id"])
        assert done == tokens == {"waiting-0", "waiting-1"}
        await agents.until(lambda s: busy(s) == 0, timeout=5)
