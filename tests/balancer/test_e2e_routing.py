"""Prefix-aware routing across real agents (issue #15): a conversation stays on its agent.

Real balancer and agent subprocesses with the default model, 2 agents x 2 slots. Who served a
request is the ``generated_by`` of its stream; why, the monitor socket's and ``/metrics``'
routing counts. A "blocker" is a long generation that shares the conversation's prefix, so it
lands on the conversation's agent and keeps one of its slots busy.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from paddler_tui.protocol.monitor import MonitorUpdate
from tests.support.cluster import Cluster, http_client, ndjson

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]
Message = dict[str, str]

SYSTEM: Message = {"role": "system", "content": "You are a helpful assistant."}
COUNT = {"role": "user", "content": "Count from 1 to 1000, separated by commas."}


def conversation_body(messages: list[Message], max_tokens: int) -> dict[str, Any]:
    return {
        "add_generation_prompt": True,
        "conversation_history": messages,
        "enable_thinking": False,
        "max_tokens": max_tokens,
    }


class Turns:
    """One conversation against the native REST route, turn by turn."""

    def __init__(self, cluster: Cluster, client: httpx.AsyncClient) -> None:
        self.url = f"{cluster.b.inference_url}/api/v1/continue_from_conversation_history"
        self.client = client
        self.messages: list[Message] = [SYSTEM]

    async def ask(self, question: str) -> str:
        """The agent that answered; its answer joins the history."""
        self.messages.append({"role": "user", "content": question})
        producers: set[str | None] = set()
        text = ""
        value: object = None
        async for message in ndjson(self.client, self.url, conversation_body(self.messages, 6)):
            assert isinstance(message, ResponseEnvelope), message
            producers.add(message.generated_by)
            assert isinstance(message.response, GeneratedToken)
            value = message.response.value
            if isinstance(value, ContentToken):
                text += value.value
        assert isinstance(value, Done), value
        self.messages.append({"role": "assistant", "content": text})
        (producer,) = producers
        assert producer is not None
        return producer

    @contextlib.asynccontextmanager
    async def blocker(self) -> AsyncIterator[str]:
        """A long generation on this conversation's prefix; yields its agent once it streams."""
        body = conversation_body([*self.messages, COUNT], 1000)
        stream = ndjson(self.client, self.url, body)
        async with contextlib.aclosing(stream):
            first = await anext(stream)
            assert isinstance(first, ResponseEnvelope), first
            assert isinstance(first.response, GeneratedToken)
            assert not isinstance(first.response.value, Done), "the blocker ended at once"
            assert first.generated_by is not None
            yield first.generated_by
        # Leaving stops it; the agent frees the slot.


async def monitor_update(
    cluster: Cluster, predicate: Callable[[MonitorUpdate], bool]
) -> MonitorUpdate:
    async with asyncio.timeout(15):
        async for update in monitor_updates(cluster.b.management_addr):
            if predicate(update):
                return update
    raise AssertionError("the monitor socket ended")


def samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def test_turns_stay_on_their_agent_while_it_has_a_free_slot_then_fall_back(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster("routing").start(agents=2, slots=2)
    async with http_client() as client:
        chat = Turns(cluster, client)
        home = await chat.ask("What is the capital of France?")
        (other,) = {"agent-1", "agent-2"} - {home}

        async with chat.blocker() as busy_on:
            assert busy_on == home
            # Least-busy would pick the idle agent; the conversation's agent still has a slot.
            assert await chat.ask("And of Italy?") == home
            async with chat.blocker() as second_busy_on:
                assert second_busy_on == home
                # Its agent is full now: the least busy one takes the turn.
                assert await chat.ask("And of Spain?") == other

        # Idle again: the deepest prefix is where the last turn went.
        assert await chat.ask("And of Portugal?") == other
        metrics = (await client.get(f"{cluster.b.management_url}/metrics")).text

    update = await monitor_update(
        cluster, lambda u: sum(a.cached_prompt_tokens for a in u.agents) > 0
    )
    by_name = {agent.name: agent for agent in update.agents}
    assert by_name[home].routed.least_busy == 1  # the first turn
    assert by_name[home].routed.prefix_hit == 3  # a blocker, a turn, a blocker
    assert (by_name[other].routed.fallback, by_name[other].routed.prefix_hit) == (1, 1)
    # The repeated conversation's last turn reused the previous turn's KV on its agent.
    assert by_name[other].cached_prompt_tokens > 0
    assert by_name[other].prompt_tokens > by_name[other].cached_prompt_tokens
    values = samples(metrics)
    assert values['paddler_routing_decisions_total{decision="prefix_hit"}'] == 4
    assert values['paddler_routing_decisions_total{decision="fallback"}'] == 1
    assert values['paddler_routing_decisions_total{decision="least_busy"}'] == 1
    cached = {
        name: value
        for name, value in values.items()
        if name.startswith("paddler_prompt_cache_hit_tokens_total{")
    }
    assert len(cached) == 2 and sum(cached.values()) > 0


@pytest.mark.parametrize(
    ("flags", "decisions"),
    [
        # The blocker is a prefix hit; the next turn may not exceed its agent's load.
        (("--routing-imbalance", "0"), {"least_busy": 1, "prefix_hit": 1, "fallback": 1}),
        # Paddler's dispatch: the idle agent, whatever it served.
        (("--routing", "least-busy"), {"least_busy": 3, "prefix_hit": 0, "fallback": 0}),
    ],
    ids=["no-imbalance", "least-busy"],
)
async def test_a_turn_goes_to_the_idle_agent_when_routing_allows_no_imbalance(
    make_cluster: MakeCluster, flags: tuple[str, str], decisions: dict[str, int]
) -> None:
    cluster = make_cluster("routing").start(*flags, agents=2, slots=2)
    async with http_client() as client:
        chat = Turns(cluster, client)
        await chat.ask("What is the capital of France?")
        async with chat.blocker() as busy_on:
            assert await chat.ask("And of Italy?") != busy_on

    update = await monitor_update(cluster, lambda u: len(u.agents) == 2)
    routed = [agent.routed for agent in update.agents]
    assert {name: sum(getattr(counts, name) for counts in routed) for name in decisions} == (
        decisions
    )
