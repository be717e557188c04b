"""The agents' prompt cache in host memory, through a real cluster (issue #15).

Real balancer and agent subprocesses with the default model, one agent with one slot, so every
new prompt takes the slot from the one before. What a cache served is the ``cached_prompt_tokens``
of each answer's ``Done``, and the agent's ``paddler_prompt_cache_hit_tokens_total`` in
``/metrics``; what the cache keeps, the ``paddler_prompt_cache_ram_*`` gauges there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from paddler_tui.protocol.usage import TokenUsage
from tests.support.cluster import (
    Cluster,
    deterministic_state,
    http_client,
    ndjson,
    raw_prompt_body,
    watch_agents,
)

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]

NOTES = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHere are my "
    "notes about {topic}. I have been reading about {topic} for a while and I find {topic} "
    "fascinating: their history, how they work, and why they matter. Give me one surprising "
    "fact about {topic}.<|im_end|>\n<|im_start|>assistant\n"
)
AGAIN = "<|im_end|>\n<|im_start|>user\nAnd one more?<|im_end|>\n<|im_start|>assistant\n"
# Stories that differ in their number only: each leaves a state of the same size, about 56
# tokens of Q8_0 KV at some 12 kB each, so 1 MiB holds one of them and not two.
STORY = (
    "Story number {number}. The old lighthouse keeper climbed the stairs every evening, counted "
    "the ships on the horizon and wrote their names in a worn notebook while a dog barked "
    "somewhere below. One night, a small boat without lights drifted toward the rocks, and"
)


@dataclass(frozen=True)
class Answer:
    text: str
    usage: TokenUsage


async def complete(cluster: Cluster, client: httpx.AsyncClient, prompt: str, tokens: int) -> Answer:
    url = f"{cluster.b.inference_url}/api/v1/continue_from_raw_prompt"
    text = ""
    value: object = None
    async for message in ndjson(client, url, raw_prompt_body(tokens, prompt)):
        assert isinstance(message, ResponseEnvelope), message
        assert isinstance(message.response, GeneratedToken), message.response
        value = message.response.value
        if isinstance(value, ContentToken):
            text += value.value
    assert isinstance(value, Done), value
    return Answer(text, value.usage)


async def interrupted_conversation(cluster: Cluster, client: httpx.AsyncClient) -> list[Answer]:
    """A conversation's first turn, another conversation, then the first one's second turn."""
    first = await complete(cluster, client, NOTES.format(topic="lighthouses"), 12)
    other = await complete(cluster, client, NOTES.format(topic="volcanoes"), 12)
    prompt = NOTES.format(topic="lighthouses") + first.text + AGAIN
    second = await complete(cluster, client, prompt, 12)
    return [first, other, second]


async def metric(cluster: Cluster, client: httpx.AsyncClient, name: str) -> float | None:
    """The one agent's sample of ``name`` in ``/metrics``; None while it has none."""
    metrics = (await client.get(f"{cluster.b.management_url}/metrics")).text
    lines = [line for line in metrics.splitlines() if line.startswith(f"{name}{{")]
    return float(lines[0].rsplit(" ", 1)[1]) if lines else None


async def hit_tokens(cluster: Cluster, client: httpx.AsyncClient) -> float | None:
    return await metric(cluster, client, "paddler_prompt_cache_hit_tokens_total")


async def ram_kept(cluster: Cluster, client: httpx.AsyncClient) -> float:
    """The bytes the agent's prompt cache in RAM keeps, once it reports a saved state (it
    reports within a second of a change)."""
    async with asyncio.timeout(10):
        while not await metric(cluster, client, "paddler_prompt_cache_ram_states"):
            await asyncio.sleep(0.1)
    kept = await metric(cluster, client, "paddler_prompt_cache_ram_bytes")
    assert kept is not None
    return kept


async def test_a_restored_conversation_is_counted_answers_as_uncached_and_a_reload_clears_it(
    make_cluster: MakeCluster,
) -> None:
    async with http_client() as client:
        uncached = make_cluster("slot-only").start(
            agents=1, slots=1, agent_flags=("--prompt-cache-ram", "0")
        )
        without = await interrupted_conversation(uncached, client)
        cluster = make_cluster("ram-cache").start(agents=1, slots=1)
        with_cache = await interrupted_conversation(cluster, client)

        assert [answer.text for answer in with_cache] == [answer.text for answer in without]
        first, other, second = with_cache
        # Slot only: the second turn shares the system prompt with the other conversation.
        shared = without[2].usage.cached_prompt_tokens
        assert shared == other.usage.cached_prompt_tokens > 0
        # From host memory: the whole first turn, its prompt and its answer.
        assert second.usage.cached_prompt_tokens > first.usage.prompt_tokens > shared
        assert second.usage.prompt_tokens == without[2].usage.prompt_tokens
        assert await hit_tokens(cluster, client) == sum(
            a.usage.cached_prompt_tokens for a in with_cache
        )

        # The other conversation was saved as the second turn took the slot. A reload to another
        # context size empties the slot and must drop the saved states too.
        async with watch_agents(cluster.b) as agents:
            cluster.put_state(deterministic_state(context_size=1024))
            await agents.until(lambda s: s.agents[0].slots_total == 0, timeout=30)
            await agents.until(
                lambda s: (
                    s.agents[0].slots_total == 1
                    and s.agents[0].state_application_status == "Applied"
                ),
                timeout=60,
            )
        prompt = NOTES.format(topic="volcanoes") + other.text + AGAIN
        after_reload = await complete(cluster, client, prompt, 12)
    assert after_reload.usage.cached_prompt_tokens == 0


async def test_the_ram_bound_evicts_the_oldest_state(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("one-mib").start(
        agents=1, slots=1, agent_flags=("--prompt-cache-ram", "1")
    )
    cached: dict[int, int] = {}
    async with http_client() as client:
        for number in (1, 2, 3, 1, 3):
            answer = await complete(cluster, client, STORY.format(number=number), 4)
            cached[number] = answer.usage.cached_prompt_tokens
        opening = (await complete(cluster, client, STORY.format(number=4), 4)).usage
        kept = await ram_kept(cluster, client)
    # Story 3 took the slot from story 2, whose state pushed story 1's out of the one MiB: story
    # 1 comes back with only the opening all stories share (held by story 3 in the slot). Story
    # 3, saved when story 1 took the slot, is restored whole but for the token to decode.
    assert cached[1] == opening.cached_prompt_tokens > 0
    assert cached[3] == answer.usage.prompt_tokens - 1
    # What the agent reports keeping stays within the bound.
    assert 0 < kept <= 2**20
