"""In-process pieces for the dispatch unit tests: agents whose socket is a recording function.

Nothing here opens a socket. An :class:`AgentController` is built the way the agent socket builds
one, except that what the balancer would send to the agent lands in :class:`RecordingSend`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from paddler_tui.protocol.agent_socket import (
    BalancerToAgentMessage,
    FromAgentResponseEnvelope,
    RelayedToken,
    ToAgentNotificationEnvelope,
    ToAgentRequestEnvelope,
    decode_agent_frame,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.envelope import (
    ContinueFromRawPrompt,
    StopRespondingTo,
)
from paddler_tui.protocol.requests import ContinueFromRawPromptParams
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.agent_pool import AgentPool
from paddler_tui.server.balancer.change_signal import ChangeSignal
from paddler_tui.server.balancer.request_forwarder import RequestForwarder
from paddler_tui.server.balancer.slot_buffer import SlotBuffer
from tests.support.agent_status import status
from tests.support.generated_tokens import token


@dataclass
class RecordingSend:
    """Stands in for the agent's socket; ``fail`` makes every send raise like a broken socket."""

    sent: list[BalancerToAgentMessage] = field(default_factory=list)
    fail: bool = False
    changed: ChangeSignal = field(default_factory=ChangeSignal)

    def __call__(self, message: BalancerToAgentMessage) -> None:
        if self.fail:
            raise ConnectionResetError("the agent's socket is gone")
        self.sent.append(message)
        self.changed.notify()

    def requests(self) -> list[ToAgentRequestEnvelope]:
        return [m for m in self.sent if isinstance(m, ToAgentRequestEnvelope)]

    def stops(self) -> list[str]:
        return [
            m.value.value
            for m in self.sent
            if isinstance(m, ToAgentNotificationEnvelope) and isinstance(m.value, StopRespondingTo)
        ]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                generation = self.changed.generation
                if predicate():
                    return
                await self.changed.wait_after(generation)


def make_agent(
    agent_id: str, *, slots: int, name: str | None = None
) -> tuple[AgentController, RecordingSend]:
    send = RecordingSend()
    agent = AgentController(
        agent_id=agent_id,
        name=name if name is not None else agent_id,
        snapshot=status(slots_total=slots),
        send=send,
    )
    return agent, send


def raw_prompt(text: str = "Hello", max_tokens: int = 8) -> ContinueFromRawPrompt:
    return ContinueFromRawPrompt(
        value=ContinueFromRawPromptParams(raw_prompt=text, max_tokens=max_tokens)
    )


def relayed(request_id: str, text: str) -> RelayedToken:
    """A content token as the agent socket reads it off the wire: kept as JSON."""
    frame = encode_agent_to_balancer_message(
        FromAgentResponseEnvelope(request_id=request_id, response=token(text))
    )
    message = decode_agent_frame(frame)
    assert isinstance(message, RelayedToken)
    return message


async def wait_until(
    signal: ChangeSignal, predicate: Callable[[], bool], timeout: float = 5.0
) -> None:
    """Until ``predicate()`` holds, re-checked after every change on ``signal``."""
    async with asyncio.timeout(timeout):
        while True:
            generation = signal.generation
            if predicate():
                return
            await signal.wait_after(generation)


@dataclass
class Dispatch:
    """A pool, a buffer with its serving loop running, and a forwarder over them."""

    pool: AgentPool
    buffer: SlotBuffer
    forwarder: RequestForwarder


@contextlib.asynccontextmanager
async def dispatch(
    *, max_buffered: int = 30, buffer_timeout_ms: int = 10_000, item_timeout_ms: int = 30_000
) -> AsyncIterator[Dispatch]:
    pool = AgentPool()
    buffer = SlotBuffer(pool, max_buffered=max_buffered, timeout_ms=buffer_timeout_ms)
    forwarder = RequestForwarder(buffer, item_timeout_ms=item_timeout_ms)
    serving = asyncio.create_task(buffer.run())
    try:
        yield Dispatch(pool, buffer, forwarder)
    finally:
        serving.cancel()
        await forwarder.close()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
