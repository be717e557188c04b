"""A fake agent where the test must control timing: item timeout, silence, drops, proxy routes.

The fake speaks the real agent protocol to a real balancer subprocess (acceptance bullet 4;
behaviour spec §1.3 fake-agent tests, §1.6 agent proxy routes, duplicate registration).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest

from paddler_tui.protocol.agent_socket import (
    ChatTemplateOverride,
    GetChatTemplateOverride,
    GetModelMetadata,
    ModelMetadataResponse,
)
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot, ModelMetadata
from paddler_tui.protocol.desired_state import ChatTemplate
from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from tests.support.cluster import (
    Cluster,
    FakeAgent,
    SnapshotWatcher,
    busy,
    deterministic_state,
    http_client,
    ndjson,
    next_message,
    raw_prompt_body,
    watch_agents,
)
from tests.support.generated_tokens import token

pytestmark = pytest.mark.slow

ITEM_TIMEOUT_MS = 500
ITEM_TIMEOUT = (
    f"Inference timed out after {ITEM_TIMEOUT_MS}ms waiting for next token. "
    "Increase --inference-item-timeout if the prompt requires longer processing."
)
RAW_PROMPT = "/api/v1/continue_from_raw_prompt"

Agents = SnapshotWatcher[AgentControllerPoolSnapshot]


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    cluster = make_module_cluster("fake-agent")
    cluster.start_balancer(
        "--inference-item-timeout", str(ITEM_TIMEOUT_MS), "--buffered-request-timeout", "5000"
    )
    return cluster


@pytest.fixture
async def agents(cluster: Cluster) -> AsyncIterator[Agents]:
    async with watch_agents(cluster.b) as watcher:
        await watcher.until(lambda s: s.agents == [], timeout=5)  # the last test's fake is gone
        yield watcher


async def registered(agents: Agents, fake: FakeAgent) -> None:
    await agents.until(lambda s: [a.id for a in s.agents] == [fake.agent_id])


async def test_a_silent_agent_gets_paddlers_504_in_time_and_the_slot_back_after(
    cluster: Cluster, agents: Agents
) -> None:
    loop = asyncio.get_running_loop()
    async with FakeAgent(cluster.b, slots=1) as fake, http_client() as client:
        await registered(agents, fake)
        started = loop.time()
        stream = ndjson(client, f"{cluster.b.inference_url}{RAW_PROMPT}", raw_prompt_body(8))
        reading = asyncio.create_task(next_message(stream))
        request = await fake.next_request()
        message = await reading
        timed_out_at = loop.time()

        assert message == ErrorEnvelope(
            request_id=request.id, error=ErrorDetails(code=504, description=ITEM_TIMEOUT)
        )
        assert ITEM_TIMEOUT_MS / 1000 <= timed_out_at - started <= ITEM_TIMEOUT_MS / 1000 + 0.5
        assert [m async for m in stream] == []
        assert await fake.next_stop() == request.id
        # Held until the agent confirms or a second timeout passes; this agent never confirms.
        assert busy(agents.latest) == 1
        await agents.until(lambda s: busy(s) == 0, timeout=5)
        assert loop.time() - timed_out_at >= ITEM_TIMEOUT_MS / 1000 - 0.1


async def test_an_agent_that_stops_sending_mid_stream_gets_the_504_after_its_last_token(
    cluster: Cluster, agents: Agents
) -> None:
    loop = asyncio.get_running_loop()
    async with FakeAgent(cluster.b, slots=1) as fake, http_client() as client:
        await registered(agents, fake)
        stream = ndjson(client, f"{cluster.b.inference_url}{RAW_PROMPT}", raw_prompt_body(8))
        reading = asyncio.create_task(next_message(stream))
        request = await fake.next_request()
        for text in ("a", "b", "c"):
            await fake.respond(request.id, token(text))
        tokens = [await reading, await anext(stream), await anext(stream)]
        last_token_at = loop.time()
        timeout = await anext(stream)

        responses = [m for m in tokens if isinstance(m, ResponseEnvelope)]
        assert responses == tokens
        assert [m.response for m in responses] == [token("a"), token("b"), token("c")]
        assert {m.generated_by for m in responses} == {"fake"}
        assert isinstance(timeout, ErrorEnvelope)
        assert timeout.error.description == ITEM_TIMEOUT
        assert loop.time() - last_token_at >= ITEM_TIMEOUT_MS / 1000 - 0.1
        assert loop.time() - last_token_at <= ITEM_TIMEOUT_MS / 1000 + 0.5
        assert await fake.next_stop() == request.id


async def test_an_agent_that_confirms_the_stop_gets_its_slot_back(
    cluster: Cluster, agents: Agents
) -> None:
    async with (
        FakeAgent(cluster.b, slots=1, answer_stops=True) as fake,
        http_client() as client,
    ):
        await registered(agents, fake)
        stream = ndjson(client, f"{cluster.b.inference_url}{RAW_PROMPT}", raw_prompt_body(8))
        reading = asyncio.create_task(next_message(stream))
        request = await fake.next_request()
        assert isinstance(await reading, ErrorEnvelope)
        assert await fake.next_stop() == request.id

        await agents.until(lambda s: busy(s) == 0, timeout=5)
        # The confirmation is swallowed: the client never sees the agent's Done.
        assert [m async for m in stream] == []


async def test_an_agent_dropping_its_socket_mid_request_is_a_502(
    cluster: Cluster, agents: Agents
) -> None:
    async with http_client() as client:
        fake = await FakeAgent(cluster.b, slots=1).connect()
        await registered(agents, fake)
        stream = ndjson(client, f"{cluster.b.inference_url}{RAW_PROMPT}", raw_prompt_body(8))
        reading = asyncio.create_task(next_message(stream))
        request = await fake.next_request()
        await fake.respond(request.id, token("a"))
        first = await reading

        await fake.close()

        assert isinstance(first, ResponseEnvelope)
        assert [m async for m in stream] == [
            ErrorEnvelope(
                request_id=request.id,
                error=ErrorDetails(code=502, description="Agent controller connection closed"),
            )
        ]
        await agents.until(lambda s: s.agents == [])


async def test_a_second_registration_of_a_live_agent_id_is_refused(
    cluster: Cluster, agents: Agents
) -> None:
    async with FakeAgent(cluster.b, slots=1, name="first") as first:
        await registered(agents, first)
        second = await FakeAgent(
            cluster.b, slots=3, name="second", agent_id=first.agent_id
        ).connect()

        await asyncio.wait_for(second.closed.wait(), 5)

        assert second.close_code == 1008
        assert not first.closed.is_set()
        (agent,) = agents.latest.agents
        assert (agent.name, agent.slots_total) == ("first", 1)
        # The first registration still serves.
        async with http_client() as client:
            stream = ndjson(client, f"{cluster.b.inference_url}{RAW_PROMPT}", raw_prompt_body(8))
            reading = asyncio.create_task(next_message(stream))
            request = await first.next_request()
            await first.respond(request.id, token("ok"))
            answer = await reading
            assert isinstance(answer, ResponseEnvelope)
            assert answer.generated_by == "first"
            await stream.aclose()


async def test_agent_proxy_routes_answer_404_200_504_and_502(
    cluster: Cluster, agents: Agents
) -> None:
    base = f"{cluster.b.management_url}/api/v1/agent"
    loop = asyncio.get_running_loop()
    async with FakeAgent(cluster.b, slots=1) as fake, http_client() as client:
        await registered(agents, fake)
        unknown = await client.get(f"{base}/no-such-agent/model_metadata")
        assert (unknown.status_code, unknown.content) == (404, b"")

        asking = asyncio.create_task(client.get(f"{base}/{fake.agent_id}/model_metadata"))
        query = await fake.next_request()
        assert query.request == GetModelMetadata()
        metadata = ModelMetadata(metadata={"general.name": "fake", "a.key": "1"})
        await fake.respond(query.id, ModelMetadataResponse(value=metadata))
        answered = await asking
        assert answered.status_code == 200
        assert answered.json() == {"metadata": {"a.key": "1", "general.name": "fake"}}

        asking = asyncio.create_task(client.get(f"{base}/{fake.agent_id}/chat_template_override"))
        query = await fake.next_request()
        assert query.request == GetChatTemplateOverride()
        await fake.respond(
            query.id, ChatTemplateOverride(value=ChatTemplate(content="{{ messages }}"))
        )
        assert (await asking).json() == {"content": "{{ messages }}"}

        asking = asyncio.create_task(client.get(f"{base}/{fake.agent_id}/chat_template_override"))
        await fake.respond((await fake.next_request()).id, ChatTemplateOverride(value=None))
        assert json.loads((await asking).content) is None

        started = loop.time()
        silent = await client.get(f"{base}/{fake.agent_id}/model_metadata")
        assert (silent.status_code, silent.content) == (504, b"")
        assert loop.time() - started >= 3.0
        await fake.next_request()

        asking = asyncio.create_task(client.get(f"{base}/{fake.agent_id}/model_metadata"))
        await fake.next_request()
        await fake.close()
        dropped = await asking
        assert (dropped.status_code, dropped.content) == (502, b"")


async def test_every_stored_state_reaches_every_agent(cluster: Cluster, agents: Agents) -> None:
    first_state = deterministic_state(temperature=0.25)
    cluster.put_state(first_state)
    async with FakeAgent(cluster.b, slots=1) as fake:
        # An agent that joins gets the applicable state right after registering...
        assert await fake.next_state() == first_state.to_agent_desired_state()
        await registered(agents, fake)
        # ...and every PUT again, even one that changes nothing.
        cluster.put_state(first_state)
        assert await fake.next_state() == first_state.to_agent_desired_state()
        with_override = first_state.model_copy(
            update={"chat_template_override": ChatTemplate(content="{{ x }}")}
        )
        cluster.put_state(with_override)
        sent = await fake.next_state()
        assert sent.chat_template_override is None  # use_chat_template_override is off
        cluster.put_state(with_override.model_copy(update={"use_chat_template_override": True}))
        assert (await fake.next_state()).chat_template_override == ChatTemplate(content="{{ x }}")
