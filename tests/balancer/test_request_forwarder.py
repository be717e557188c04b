"""Forwarding one request: relay, item timeout, drains, disconnects, shutdown, send failure.

Paddler's ``request_from_agent`` unit behaviours (behaviour spec §1.3, §1.4) on a fake agent whose
socket is a recording function; the test plays the agent by delivering responses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from paddler_tui.protocol.embedding import EmbeddingDone
from paddler_tui.protocol.envelope import (
    EmbeddingResponse,
    ErrorDetails,
    ErrorEnvelope,
    GeneratedToken,
    GenerateEmbeddingBatch,
)
from paddler_tui.protocol.generated_token import Done
from paddler_tui.protocol.inference_socket import (
    OutgoingMessage,
    RelayedResponse,
    ResponseEnvelope,
    encode_inference_server_message,
)
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.agent_controller import AgentController
from tests.balancer.pool_fakes import (
    Dispatch,
    RecordingSend,
    dispatch,
    make_agent,
    raw_prompt,
    relayed,
    wait_until,
)
from tests.support.generated_tokens import done, token

ITEM_TIMEOUT_TEXT = (
    "Inference timed out after {ms}ms waiting for next token. "
    "Increase --inference-item-timeout if the prompt requires longer processing."
)


def error(request_id: str, code: int, description: str) -> ErrorEnvelope:
    return ErrorEnvelope(
        request_id=request_id, error=ErrorDetails(code=code, description=description)
    )


def add_agent(
    d: Dispatch, slots: int = 1, name: str = "agent-1"
) -> tuple[AgentController, RecordingSend]:
    agent, send = make_agent(name, slots=slots)
    d.pool.register(agent)
    return agent, send


async def released(d: Dispatch, agent: AgentController, timeout: float = 5.0) -> None:
    await wait_until(d.pool.changed, lambda: agent.slots_processing == 0, timeout)


async def test_relays_the_agents_items_then_releases_the_slot_at_the_terminal() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        async with contextlib.aclosing(d.forwarder.forward("req-1", raw_prompt())) as stream:
            first = asyncio.create_task(anext(stream))
            await send.wait_for(lambda: len(send.requests()) == 1)
            (sent,) = send.requests()
            assert (sent.id, sent.request) == ("req-1", raw_prompt())
            assert agent.slots_processing == 1

            agent.deliver("req-1", token("Hel"))
            agent.deliver("req-1", token("lo"))
            agent.deliver("req-1", done())
            messages = [await first] + [message async for message in stream]

        assert messages == [
            ResponseEnvelope(generated_by="agent-1", request_id="req-1", response=item)
            for item in (token("Hel"), token("lo"), done())
        ]
        assert agent.slots_processing == 0
        assert send.stops() == []


async def test_relayed_tokens_are_spliced_counted_and_end_at_a_typed_terminal() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        async with contextlib.aclosing(d.forwarder.forward("req-1", raw_prompt())) as stream:
            first = asyncio.create_task(anext(stream))
            await send.wait_for(lambda: len(send.requests()) == 1)
            agent.deliver("req-1", relayed("req-1", "Hel"))
            agent.deliver("req-1", relayed("req-1", "lo"))
            messages = [await first, await anext(stream)]
            assert [r.tokens for r in d.forwarder.monitor.requests()] == [2]
            agent.deliver("req-1", done())
            messages += [message async for message in stream]

        assert [type(m) for m in messages] == [RelayedResponse, RelayedResponse, ResponseEnvelope]
        assert [encode_inference_server_message(m) for m in messages] == [
            encode_inference_server_message(
                ResponseEnvelope(generated_by="agent-1", request_id="req-1", response=item)
            )
            for item in (token("Hel"), token("lo"), done())
        ]
        assert agent.slots_processing == 0


async def test_an_embedding_batch_ends_at_its_done() -> None:
    request = GenerateEmbeddingBatch(
        value=GenerateEmbeddingBatchParams.model_validate(
            {"input_batch": [{"id": "1", "content": "x"}], "normalization_method": "L2"}
        )
    )
    async with dispatch() as d:
        agent, send = add_agent(d)
        agent_done = EmbeddingResponse(value=EmbeddingDone())
        async with contextlib.aclosing(d.forwarder.forward("emb", request)) as stream:
            first = asyncio.create_task(anext(stream))
            await send.wait_for(lambda: len(send.requests()) == 1)
            agent.deliver("emb", agent_done)
            answer = await first
            assert isinstance(answer, ResponseEnvelope)
            assert answer.response == agent_done
            assert [m async for m in stream] == []
        assert agent.slots_processing == 0


async def test_item_timeout_sends_paddlers_504_and_stops_the_agent() -> None:
    async with dispatch(item_timeout_ms=150) as d:
        agent, send = add_agent(d)
        loop = asyncio.get_running_loop()
        started = loop.time()

        messages = [m async for m in d.forwarder.forward("req-1", raw_prompt())]

        assert loop.time() - started >= 0.15
        assert messages == [error("req-1", 504, ITEM_TIMEOUT_TEXT.format(ms=150))]
        await send.wait_for(lambda: send.stops() == ["req-1"])
        # The slot stays taken until the agent confirms it stopped.
        assert agent.slots_processing == 1
        agent.deliver("req-1", done())
        await released(d, agent)


async def test_item_timeout_counts_from_the_last_item_not_from_the_start() -> None:
    async with dispatch(item_timeout_ms=300) as d:
        agent, send = add_agent(d)

        async def play_agent() -> None:
            await send.wait_for(lambda: len(send.requests()) == 1)
            for index in range(6):  # 6 x 100 ms: twice the item timeout in all
                await asyncio.sleep(0.1)
                agent.deliver("req-1", token(str(index)))
            agent.deliver("req-1", done())

        playing = asyncio.create_task(play_agent())
        messages = [m async for m in d.forwarder.forward("req-1", raw_prompt())]
        await playing

        assert all(isinstance(m, ResponseEnvelope) for m in messages)
        assert len(messages) == 7


async def test_a_silent_agent_keeps_the_slot_until_a_second_item_timeout() -> None:
    async with dispatch(item_timeout_ms=150) as d:
        agent, _ = add_agent(d)
        loop = asyncio.get_running_loop()

        messages = [m async for m in d.forwarder.forward("req-1", raw_prompt())]
        timed_out_at = loop.time()
        assert isinstance(messages[-1], ErrorEnvelope)
        assert agent.slots_processing == 1

        await released(d, agent)
        assert loop.time() - timed_out_at >= 0.15


async def test_a_zero_item_timeout_times_out_at_once() -> None:
    async with dispatch(item_timeout_ms=0) as d:
        add_agent(d)

        messages = await asyncio.wait_for(_collect(d.forwarder.forward("req-1", raw_prompt())), 5)

        assert messages == [error("req-1", 504, ITEM_TIMEOUT_TEXT.format(ms=0))]


async def test_agent_disconnect_mid_stream_is_a_502_and_frees_the_slot() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        async with contextlib.aclosing(d.forwarder.forward("req-1", raw_prompt())) as stream:
            first = asyncio.create_task(anext(stream))
            await send.wait_for(lambda: len(send.requests()) == 1)
            agent.deliver("req-1", token("a"))
            await first

            d.pool.remove(agent)
            rest = [m async for m in stream]

        assert rest == [error("req-1", 502, "Agent controller connection closed")]
        assert agent.slots_processing == 0


async def test_shutdown_mid_stream_is_a_503_and_frees_the_slot() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        async with contextlib.aclosing(d.forwarder.forward("req-1", raw_prompt())) as stream:
            first = asyncio.create_task(anext(stream))
            await send.wait_for(lambda: len(send.requests()) == 1)
            d.pool.shut_down()

            assert await first == error("req-1", 503, "balancer is shutting down")
            assert [m async for m in stream] == []
        assert agent.slots_processing == 0


async def test_shutdown_while_buffered_is_a_503() -> None:
    async with dispatch() as d:  # no agents: the request waits
        stream = d.forwarder.forward("req-1", raw_prompt())
        collecting = asyncio.create_task(_collect(stream))
        await wait_until(d.buffer.changed, lambda: d.buffer.buffered == 1)

        d.buffer.close()

        assert await collecting == [error("req-1", 503, "balancer is shutting down")]


async def test_buffer_overflow_and_buffer_timeout_are_error_envelopes() -> None:
    async with dispatch(max_buffered=0) as d:
        assert await _collect(d.forwarder.forward("a", raw_prompt())) == [
            error("a", 503, "Buffered requests overflow")
        ]
    async with dispatch(buffer_timeout_ms=100) as d:
        assert await _collect(d.forwarder.forward("b", raw_prompt())) == [
            error("b", 504, "Waiting for available slot timed out")
        ]


async def test_client_leaving_mid_stream_stops_the_agent_and_holds_the_slot_until_done() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        stream = d.forwarder.forward("req-1", raw_prompt())
        first = asyncio.create_task(anext(stream))
        await send.wait_for(lambda: len(send.requests()) == 1)
        agent.deliver("req-1", token("a"))
        await first

        await stream.aclose()  # the client went away

        await send.wait_for(lambda: send.stops() == ["req-1"])
        agent.deliver("req-1", token("late"))  # discarded while draining
        agent.deliver("req-1", relayed("req-1", "later"))
        await asyncio.sleep(0.05)
        assert agent.slots_processing == 1
        agent.deliver("req-1", done())
        await released(d, agent)


async def test_client_cancelled_while_waiting_for_a_token_stops_the_agent() -> None:
    async with dispatch(item_timeout_ms=200) as d:
        agent, send = add_agent(d)
        collecting = asyncio.create_task(_collect(d.forwarder.forward("req-1", raw_prompt())))
        await send.wait_for(lambda: len(send.requests()) == 1)

        collecting.cancel()

        await send.wait_for(lambda: send.stops() == ["req-1"])
        assert agent.slots_processing == 1
        # The agent never confirms: the slot comes back after an item timeout.
        await released(d, agent)


async def test_client_cancelled_while_buffered_never_reaches_an_agent() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        running = await d.buffer.acquire()
        collecting = asyncio.create_task(_collect(d.forwarder.forward("req-1", raw_prompt())))
        await wait_until(d.buffer.changed, lambda: d.buffer.buffered == 1)

        collecting.cancel()
        await wait_until(d.buffer.changed, lambda: d.buffer.buffered == 0)
        running.release()

        assert agent.slots_processing == 0
        assert send.sent == []


async def test_a_drain_ends_when_the_agent_disconnects() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        collecting = asyncio.create_task(_collect(d.forwarder.forward("req-1", raw_prompt())))
        await send.wait_for(lambda: len(send.requests()) == 1)
        collecting.cancel()
        await send.wait_for(lambda: send.stops() == ["req-1"])
        assert agent.slots_processing == 1

        d.pool.remove(agent)

        await wait_until(d.pool.changed, lambda: agent.slots_processing == 0)


async def test_closing_the_forwarder_ends_drains_and_frees_their_slots() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        collecting = asyncio.create_task(_collect(d.forwarder.forward("req-1", raw_prompt())))
        await send.wait_for(lambda: len(send.requests()) == 1)
        collecting.cancel()
        await send.wait_for(lambda: send.stops() == ["req-1"])

        await asyncio.wait_for(d.forwarder.close(), 5)

        assert agent.slots_processing == 0


async def test_a_failed_send_is_a_500_and_frees_the_slot() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        send.fail = True

        messages = await _collect(d.forwarder.forward("req-1", raw_prompt()))

        assert messages == [error("req-1", 500, "Failed to generate response")]
        assert agent.slots_processing == 0


@pytest.mark.parametrize("slots", [1, 3])
async def test_each_request_gets_only_its_own_items(slots: int) -> None:
    async with dispatch() as d:
        agent, send = add_agent(d, slots=slots)
        ids = [f"req-{i}" for i in range(slots)]
        collecting = [
            asyncio.create_task(_collect(d.forwarder.forward(i, raw_prompt()))) for i in ids
        ]
        await send.wait_for(lambda: len(send.requests()) == slots)

        for request_id in reversed(ids):
            agent.deliver(request_id, token(request_id))
            agent.deliver(request_id, done())
        results = await asyncio.gather(*collecting)

        for request_id, messages in zip(ids, results, strict=True):
            responses = [m for m in messages if isinstance(m, ResponseEnvelope)]
            assert responses == messages
            assert {m.request_id for m in responses} == {request_id}
            assert responses[0].response == token(request_id)
        assert agent.slots_processing == 0


async def test_with_a_sink_tokens_skip_the_iterator_and_keep_their_order() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        delivered: list[object] = []
        stream = d.forwarder.forward("req-1", raw_prompt(), deliver=delivered.append)
        async with contextlib.aclosing(stream):
            rest = asyncio.create_task(_collect(stream))
            await send.wait_for(lambda: len(send.requests()) == 1)

            agent.deliver("req-1", relayed("req-1", "a"))  # straight to the sink
            assert [m.token.text for m in delivered if isinstance(m, RelayedResponse)] == ["a"]
            assert [r.tokens for r in d.forwarder.monitor.requests()] == [1]
            agent.deliver("req-1", token("b"))  # typed: through the iterator
            agent.deliver("req-1", relayed("req-1", "c"))  # queued behind "b", not before it
            agent.deliver("req-1", done())
            messages = await rest

        assert len(delivered) == 1
        assert [encode_inference_server_message(m) for m in messages] == [
            encode_inference_server_message(
                ResponseEnvelope(generated_by="agent-1", request_id="req-1", response=item)
            )
            for item in (token("b"), token("c"), done())
        ]
        assert agent.slots_processing == 0


async def test_tokens_given_to_a_sink_count_as_items_for_the_item_timeout() -> None:
    async with dispatch(item_timeout_ms=300) as d:
        agent, send = add_agent(d)
        delivered: list[object] = []

        async def play_agent() -> None:
            await send.wait_for(lambda: len(send.requests()) == 1)
            for index in range(6):  # 6 x 100 ms: twice the item timeout in all
                await asyncio.sleep(0.1)
                agent.deliver("req-1", relayed("req-1", str(index)))
            agent.deliver("req-1", done())

        playing = asyncio.create_task(play_agent())
        stream = d.forwarder.forward("req-1", raw_prompt(), deliver=delivered.append)
        messages = await _collect(stream)
        await playing

        assert len(delivered) == 6
        assert [type(m) for m in messages] == [ResponseEnvelope]


async def test_a_sink_gets_nothing_once_the_client_left() -> None:
    async with dispatch() as d:
        agent, send = add_agent(d)
        delivered: list[object] = []
        stream = d.forwarder.forward("req-1", raw_prompt(), deliver=delivered.append)
        waiting = asyncio.create_task(anext(stream))
        await send.wait_for(lambda: len(send.requests()) == 1)
        agent.deliver("req-1", relayed("req-1", "a"))

        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await send.wait_for(lambda: send.stops() == ["req-1"])
        agent.deliver("req-1", relayed("req-1", "late"))
        agent.deliver("req-1", done())

        assert len(delivered) == 1
        await released(d, agent)


async def _collect(stream: AsyncGenerator[OutgoingMessage, None]) -> list[OutgoingMessage]:
    async with contextlib.aclosing(stream) as messages:
        return [message async for message in messages]


async def test_a_finished_generation_adds_its_prompt_tokens_to_its_agent() -> None:
    usage = TokenUsage.zero().model_copy(update={"prompt_tokens": 30, "cached_prompt_tokens": 20})
    async with dispatch() as d:
        agent, _ = add_agent(d)
        chain = (1, 2)
        for request_id in ("req-1", "req-2"):
            stream = d.forwarder.forward(request_id, raw_prompt(), chain=chain)
            collecting = asyncio.create_task(_collect(stream))
            await wait_until(d.pool.changed, lambda: agent.slots_processing == 1)
            agent.deliver(request_id, GeneratedToken(value=Done(usage=usage)))
            await collecting

        assert (agent.prompt_tokens, agent.cached_prompt_tokens) == (60, 40)
        assert agent.routed == {"least_busy": 1, "prefix_hit": 1}


async def test_a_request_that_ends_without_usage_adds_no_prompt_tokens() -> None:
    async with dispatch(item_timeout_ms=50) as d:
        agent, _ = add_agent(d)

        messages = await _collect(d.forwarder.forward("req-1", raw_prompt(), chain=(1,)))

        assert isinstance(messages[-1], ErrorEnvelope)
        assert (agent.prompt_tokens, agent.cached_prompt_tokens) == (0, 0)
