"""Least-busy dispatch across real agents (behaviour spec §1.1, acceptance bullet 1).

Real balancer and agent subprocesses with the default model; slot counts are read from
``/api/v1/agents/stream``, as Paddler's harness does.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import pytest

from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import Done
from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope
from tests.support.cluster import (
    Cluster,
    busy,
    collect,
    http_client,
    raw_prompt_body,
    watch_agents,
)

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]


def producer_of(messages: list[InferenceServerMessage]) -> str:
    """The one agent that produced a whole successful stream."""
    assert all(isinstance(m, ResponseEnvelope) for m in messages), messages
    last = messages[-1]
    assert isinstance(last, ResponseEnvelope)
    assert isinstance(last.response, GeneratedToken)
    assert isinstance(last.response.value, Done)
    (producer,) = {m.generated_by for m in messages if isinstance(m, ResponseEnvelope)}
    assert producer is not None
    return producer


async def test_four_single_slot_agents_serve_four_requests_one_each(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("four-by-one").start(agents=4, slots=1)
    url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"

    async with http_client() as client:
        streams = await asyncio.gather(
            *(collect(client, url, raw_prompt_body(16)) for _ in range(4))
        )

    producers = [producer_of(messages) for messages in streams]
    assert sorted(producers) == ["agent-1", "agent-2", "agent-3", "agent-4"]


async def test_sixteen_requests_on_four_by_four_put_exactly_four_on_each_agent(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("four-by-four").start(agents=4, slots=4)
    url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"

    async with watch_agents(cluster.b) as agents, http_client() as client:
        requests = asyncio.gather(*(collect(client, url, raw_prompt_body(16)) for _ in range(16)))
        full = await agents.until(
            lambda s: [a.slots_processing for a in s.agents] == [4, 4, 4, 4], timeout=30
        )
        streams = await requests
        await agents.until(lambda s: busy(s) == 0)

    assert all(a.slots_total == 4 for a in full.agents)
    assert max(busy(s) for s in agents.snapshots) == 16
    assert Counter(producer_of(messages) for messages in streams) == {
        f"agent-{i}": 4 for i in range(1, 5)
    }
