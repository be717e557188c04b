"""The stream helpers under the HTTP responses: NDJSON lines and SSE snapshot events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope
from paddler_tui.server.balancer.change_signal import ChangeSignal
from paddler_tui.server.balancer.web.inference_service import ndjson
from paddler_tui.server.balancer.web.sse import snapshot_events
from tests.support.generated_tokens import token


async def test_closing_the_lines_closes_the_request_stream_at_once() -> None:
    closed = False

    async def messages() -> AsyncGenerator[InferenceServerMessage, None]:
        nonlocal closed
        try:
            for text in ("a", "b"):
                yield ResponseEnvelope(generated_by="x", request_id="r", response=token(text))
        finally:
            closed = True  # where the forwarder stops the agent or leaves the buffer

    stream = messages()
    lines = ndjson(stream)
    assert (await anext(lines)).endswith(b"\n")

    assert isinstance(lines, AsyncGenerator)
    await lines.aclose()

    assert closed


async def test_snapshot_events_send_now_and_after_each_change_skipping_repeats() -> None:
    signal = ChangeSignal()
    value = [b"1"]
    events = snapshot_events(signal, lambda: value[0])

    assert await anext(events) == b"data: 1\n\n"
    nothing_new = asyncio.ensure_future(anext(events))
    signal.notify()  # same snapshot: no event
    await asyncio.sleep(0.01)
    assert not nothing_new.done()
    value[0] = b"2"
    signal.notify()
    assert await asyncio.wait_for(nothing_new, 1) == b"data: 2\n\n"


async def test_snapshot_events_keep_the_connection_alive_when_idle() -> None:
    events = snapshot_events(ChangeSignal(), lambda: b"1", keep_alive_s=0.01)

    assert await anext(events) == b"data: 1\n\n"
    assert await asyncio.wait_for(anext(events), 1) == b": keep-alive\n\n"


async def test_snapshot_events_end_once_the_balancer_shuts_down() -> None:
    signal = ChangeSignal()
    shutting_down = False
    events = snapshot_events(signal, lambda: b"1", ended=lambda: shutting_down)
    assert await anext(events) == b"data: 1\n\n"
    waiting = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)

    shutting_down = True
    signal.notify()

    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(waiting, 1)
