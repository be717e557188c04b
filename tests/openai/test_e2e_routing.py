"""OpenAI affinity keys with prefix-aware routing (issue #15), through the official client.

Requests that share a ``prompt_cache_key`` (or, without one, a ``user``) and a prefix go to one
agent; a different key never matches, even with the same messages. Who served a request is read
from the monitor socket's ``request_completed`` events, whose request ids are the responses' ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import openai
import pytest

from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.monitor import MonitorEvent
from tests.support.cluster import Cluster, greedy_state

pytestmark = pytest.mark.slow

STORY = "Tell me a story."


async def served_by(cluster: Cluster, request_ids: set[str]) -> dict[str, str | None]:
    """The agent name that completed each request, from the monitor's event history."""
    events: dict[str, MonitorEvent] = {}
    async with asyncio.timeout(15):
        async for update in monitor_updates(cluster.b.management_addr):
            for event in update.events:
                if event.kind == "request_completed" and event.request_id in request_ids:
                    events[event.request_id] = event
            if set(events) == request_ids:
                return {request_id: event.agent_name for request_id, event in events.items()}
    raise AssertionError("the monitor socket ended")


async def test_requests_sharing_an_affinity_key_share_an_agent(
    make_module_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_module_cluster("openai-routing").start(
        openai=True, agents=2, slots=2, state=greedy_state()
    )
    client = openai.AsyncOpenAI(
        base_url=f"{cluster.b.openai_url}/v1", api_key="unused", max_retries=0
    )

    async def chat(key: str) -> str:
        completion = await client.chat.completions.create(
            model="smol",
            messages=[{"role": "user", "content": STORY}],
            max_completion_tokens=8,
            prompt_cache_key=key,
        )
        return completion.id

    async def respond(user: str) -> str:
        response = await client.responses.create(
            model="smol", input=STORY, max_output_tokens=16, user=user
        )
        return response.id.removeprefix("resp_")

    alice = await asyncio.gather(chat("alice"), chat("alice"))
    bob = await asyncio.gather(chat("bob"), chat("bob"))
    carol = await asyncio.gather(respond("carol"), respond("carol"))
    await client.close()

    agents = await served_by(cluster, {*alice, *bob, *carol})
    for pair in (alice, bob, carol):
        assert len({agents[request_id] for request_id in pair}) == 1
    # Each key's first request found no prefix (not even another key's): least busy.
    async with asyncio.timeout(15):
        update = await anext(monitor_updates(cluster.b.management_addr))
    assert sum(agent.routed.least_busy for agent in update.agents) == 3
    assert sum(agent.routed.prefix_hit for agent in update.agents) == 3
