"""One request's life after the buffer: send to an agent, relay what it says, enforce timeouts.

Every way a request can end leaves the slot accounted for: a terminal response releases it at
once; a client that goes away or a per-item timeout stops the agent and holds the slot until
the agent confirms (its terminal response) or another item timeout passes, as Paddler does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator

from paddler_tui.protocol.agent_socket import RelayedToken, ToAgentRequest
from paddler_tui.protocol.embedding import is_terminal as embedding_is_terminal
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    EmbeddingResponse,
    ErrorDetails,
    ErrorEnvelope,
    GeneratedToken,
)
from paddler_tui.protocol.generated_token import Done
from paddler_tui.protocol.generated_token import is_terminal as token_is_terminal
from paddler_tui.protocol.inference_socket import (
    OutgoingMessage,
    RelayedResponse,
    ResponseEnvelope,
    ResponseHead,
)
from paddler_tui.protocol.monitor import MonitorEventKind, RequestKind
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.agent_controller import (
    AgentController,
    AgentDisconnectedError,
    BalancerShuttingDownError,
    ChannelItem,
)
from paddler_tui.server.balancer.agent_pool import SlotLease
from paddler_tui.server.balancer.mailbox import Mailbox
from paddler_tui.server.balancer.monitor_hub import MonitorHub
from paddler_tui.server.balancer.slot_buffer import (
    BufferOverflowError,
    BufferTimeoutError,
    ShuttingDownError,
    SlotBuffer,
)

logger = logging.getLogger(__name__)

OVERFLOW = (503, "Buffered requests overflow")
BUFFER_TIMEOUT = (504, "Waiting for available slot timed out")
AGENT_GONE = (502, "Agent controller connection closed")
SHUTTING_DOWN = (503, "balancer is shutting down")
SEND_FAILED = (500, "Failed to generate response")


def item_timeout_error(timeout_ms: int) -> tuple[int, str]:
    return (
        504,
        f"Inference timed out after {timeout_ms}ms waiting for next token. "
        "Increase --inference-item-timeout if the prompt requires longer processing.",
    )


def error_envelope(request_id: str, error: tuple[int, str]) -> ErrorEnvelope:
    code, description = error
    return ErrorEnvelope(
        request_id=request_id, error=ErrorDetails(code=code, description=description)
    )


def is_terminal_response(response: ChannelItem) -> bool:
    if isinstance(response, RelayedToken):
        return False
    if isinstance(response, GeneratedToken):
        return token_is_terminal(response.value)
    if isinstance(response, EmbeddingResponse):
        return embedding_is_terminal(response.value)
    return True


def request_kind(request: ToAgentRequest) -> RequestKind:
    if isinstance(request, ContinueFromConversationHistory):
        return "conversation"
    if isinstance(request, ContinueFromRawPrompt):
        return "raw_prompt"
    return "embedding"


def usage_of(response: GeneratedToken | EmbeddingResponse) -> TokenUsage | None:
    if isinstance(response, GeneratedToken) and isinstance(response.value, Done):
        return response.value.usage
    return None


def interrupted(
    reason: AgentDisconnectedError | BalancerShuttingDownError,
) -> tuple[MonitorEventKind, tuple[int, str]]:
    """The feed's event kind and the client's error when a request loses its agent."""
    if isinstance(reason, AgentDisconnectedError):
        return "agent_lost", AGENT_GONE
    return "shutting_down", SHUTTING_DOWN


def describe_result(response: GeneratedToken | EmbeddingResponse) -> str:
    """A line for the event feed: "Done", or the failure's variant and text."""
    result = response.value
    value = getattr(result, "value", None)
    return f"{result.TAG}: {value}" if isinstance(value, str) else result.TAG


class RequestForwarder:
    """Forwards inference requests; owns the background drains of abandoned requests."""

    def __init__(
        self, buffer: SlotBuffer, *, item_timeout_ms: int, monitor: MonitorHub | None = None
    ) -> None:
        self.buffer = buffer
        self.item_timeout_ms = item_timeout_ms
        self.monitor = monitor if monitor is not None else MonitorHub()
        self._drains: set[asyncio.Task[None]] = set()

    async def forward(
        self, request_id: str, request: ToAgentRequest
    ) -> AsyncGenerator[OutgoingMessage, None]:
        """Every message for the client, ending with a terminal response or an error.

        Closing the iterator early (client gone) stops the agent and drains in the background.
        """
        monitor = self.monitor
        monitor.buffered(request_id, request_kind(request))
        lease = await self._acquire(request_id)
        if isinstance(lease, ErrorEnvelope):
            yield lease
            return
        agent = lease.agent
        head = ResponseHead(agent.name, request_id)
        monitor.running(request_id, agent)
        channel = agent.open_channel(request_id)
        finished = timed_out = False
        try:
            try:
                await agent.send_request(request_id, request)
            except Exception as error:  # the socket broke under us
                logger.warning("sending %s to agent %s failed: %s", request_id, agent.id, error)
                finished = True
                monitor.finished(request_id, "agent_lost", SEND_FAILED[1])
                yield error_envelope(request_id, SEND_FAILED)
                return
            while True:
                item = await self._next_item(channel)
                # Relayed tokens first, being most items; they are never terminal.
                if isinstance(item, RelayedToken):
                    monitor.item(request_id, token=True)
                    yield RelayedResponse(head, item)
                elif isinstance(item, GeneratedToken | EmbeddingResponse):
                    finished = is_terminal_response(item)
                    if finished:
                        monitor.finished(
                            request_id, "request_completed", describe_result(item), usage_of(item)
                        )
                    else:
                        monitor.item(request_id, token=True)
                    yield ResponseEnvelope(
                        generated_by=agent.name, request_id=request_id, response=item
                    )
                    if finished:
                        return
                elif item is None:
                    timed_out = True
                    timeout = item_timeout_error(self.item_timeout_ms)
                    monitor.event("item_timeout", timeout[1], request_id=request_id, agent=agent)
                    yield error_envelope(request_id, timeout)
                    return
                elif isinstance(item, AgentDisconnectedError | BalancerShuttingDownError):
                    finished = True
                    kind, interruption = interrupted(item)
                    monitor.finished(request_id, kind, interruption[1])
                    yield error_envelope(request_id, interruption)
                    return
        finally:
            if finished:
                agent.close_channel(request_id)
                lease.release()
            else:
                self._drain_later(request_id, agent, channel, lease, timed_out=timed_out)

    async def _acquire(self, request_id: str) -> SlotLease | ErrorEnvelope:
        """A slot, or the error envelope that ends the request while it was buffered."""
        failure: tuple[MonitorEventKind, tuple[int, str]]
        try:
            return await self.buffer.acquire()
        except BufferOverflowError:
            failure = ("buffer_overflow", OVERFLOW)
        except BufferTimeoutError:
            failure = ("buffer_timeout", BUFFER_TIMEOUT)
        except ShuttingDownError:
            failure = ("shutting_down", SHUTTING_DOWN)
        except asyncio.CancelledError:
            self.monitor.finished(request_id, "client_cancelled", "the client left while buffered")
            raise
        kind, error = failure
        self.monitor.finished(request_id, kind, error[1])
        return error_envelope(request_id, error)

    async def _next_item(self, channel: Mailbox[ChannelItem]) -> ChannelItem | None:
        """The next item, or None after a whole item timeout without one."""
        # Tokens often arrive in bursts; skip the timer when one is already waiting.
        if not channel.empty():
            return channel.get_nowait()
        try:
            async with asyncio.timeout(self.item_timeout_ms / 1000):
                return await channel.get()
        except TimeoutError:
            return None

    def _drain_later(
        self,
        request_id: str,
        agent: AgentController,
        channel: Mailbox[ChannelItem],
        lease: SlotLease,
        *,
        timed_out: bool,
    ) -> None:
        if not timed_out:
            self.monitor.event(
                "client_cancelled",
                "the client left; stopping the agent",
                request_id=request_id,
                agent=agent,
            )
        self.monitor.draining(request_id)
        task = asyncio.create_task(self._drain(request_id, agent, channel, lease))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(
        self,
        request_id: str,
        agent: AgentController,
        channel: Mailbox[ChannelItem],
        lease: SlotLease,
    ) -> None:
        """Stop the agent and keep the slot until it confirms or goes quiet."""
        try:
            await agent.send_stop(request_id)
            while True:
                item = await self._next_item(channel)
                if item is None or is_terminal_response(item):
                    return
        finally:
            agent.close_channel(request_id)
            lease.release()
            self.monitor.finished(request_id)

    async def close(self) -> None:
        """Shutdown: abandon the drains (their slots are released)."""
        for task in list(self._drains):
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
