"""The asyncio shell of a request's life: wait for a slot, read and time the agent's items.

What each happening means is decided by :class:`~paddler_tui.server.balancer.relay.RequestRelay`;
this module only waits for things (the slot buffer, the agent's channel, the item timeout),
feeds them to the relay and carries out its actions. A client that goes away, or an item
timeout, leaves the slot held by a background drain until the agent confirms it stopped or
another item timeout passes, as Paddler does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable

from paddler_tui.protocol.agent_socket import RelayedToken, ToAgentRequest
from paddler_tui.protocol.inference_socket import OutgoingMessage
from paddler_tui.server.balancer.agent_controller import (
    AgentController,
    AgentDisconnectedError,
    BalancerShuttingDownError,
    ChannelItem,
    RequestChannel,
)
from paddler_tui.server.balancer.agent_pool import SlotLease
from paddler_tui.server.balancer.monitor_hub import MonitorHub
from paddler_tui.server.balancer.relay import (
    Actions,
    Deliver,
    EndStream,
    RecordEvent,
    RecordFinish,
    RecordItem,
    RecordPhase,
    ReleaseSlot,
    RequestRelay,
    SendRequest,
    SendStop,
)
from paddler_tui.server.balancer.routing.prefix_chain import PrefixChain
from paddler_tui.server.balancer.slot_buffer import (
    BufferOverflowError,
    BufferTimeoutError,
    ShuttingDownError,
    SlotBuffer,
)

logger = logging.getLogger(__name__)

# Takes a message for the client at once (the inference socket queues it for its writer).
ClientSink = Callable[[OutgoingMessage], None]


class _Flight:
    """One request's relay with what its actions act on: the slot, the agent, the monitor."""

    __slots__ = ("agent", "channel", "deliver", "lease", "monitor", "relay", "token_at")

    def __init__(
        self, relay: RequestRelay, monitor: MonitorHub, lease: SlotLease | None = None
    ) -> None:
        self.relay = relay
        self.monitor = monitor
        self.lease = lease
        self.agent: AgentController | None = lease.agent if lease is not None else None
        self.channel: RequestChannel | None = (
            self.agent.open_channel(relay.request_id) if self.agent is not None else None
        )
        self.deliver: ClientSink | None = None
        # When the last token came straight from the channel (loop time), for the item timeout.
        self.token_at = float("-inf")

    def deliver_tokens(self, deliver: ClientSink) -> None:
        """From now on, relayed tokens go to ``deliver`` as the agent socket reads them."""
        assert self.channel is not None
        self.deliver = deliver
        self.channel.tokens_to = self.take_token

    def take_token(self, token: RelayedToken) -> None:
        """A token straight from the channel (in the agent socket's task)."""
        self.token_at = asyncio.get_running_loop().time()
        message = self._relayed(token)
        if message is not None and self.deliver is not None:
            self.deliver(message)

    def feed(self, item: ChannelItem | None) -> OutgoingMessage | None:
        """Feed the relay one item from the channel (None: an item timeout); the delivery."""
        relay = self.relay
        if isinstance(item, RelayedToken):
            return self._relayed(item)
        if item is None:
            return self.perform(relay.item_timed_out())
        if isinstance(item, AgentDisconnectedError):
            return self.perform(relay.agent_lost())
        if isinstance(item, BalancerShuttingDownError):
            return self.perform(relay.shut_down())
        return self.perform(relay.response(item))

    def _relayed(self, token: RelayedToken) -> OutgoingMessage | None:
        """The client's message for a token, counted for the monitor; None while draining."""
        message = self.relay.relayed_token(token)
        if message is not None:
            self.monitor.item(self.relay.request_id, token=True)
        return message

    def perform(self, actions: Actions) -> OutgoingMessage | None:
        """Carry out the actions; the message for the client (always the last action), if any."""
        relay, monitor = self.relay, self.monitor
        request_id = relay.request_id
        delivery: OutgoingMessage | None = None
        for action in actions:
            if isinstance(action, Deliver | EndStream):
                return action.message
            if isinstance(action, RecordItem):
                monitor.item(request_id, token=True)
            elif isinstance(action, SendRequest):
                delivery = self._send(action)
            elif isinstance(action, RecordPhase):
                if action.phase == "running" and self.agent is not None:
                    monitor.running(request_id, self.agent)
                elif action.phase == "draining":
                    monitor.draining(request_id)
            elif isinstance(action, RecordEvent):
                monitor.event(action.kind, action.text, request_id=request_id, agent=self.agent)
            elif isinstance(action, RecordFinish):
                monitor.finished(request_id, action.kind, action.text, action.usage)
                if action.usage is not None and self.agent is not None:
                    self.agent.count_usage(action.usage)
            elif isinstance(action, ReleaseSlot):
                if self.agent is not None and self.lease is not None:
                    self.agent.close_channel(request_id)
                    self.lease.release()
            elif isinstance(action, SendStop) and self.agent is not None:
                self.agent.send_stop(request_id)
        return delivery

    def _send(self, action: SendRequest) -> OutgoingMessage | None:
        assert self.agent is not None
        try:
            self.agent.send_request(self.relay.request_id, action.request)
        except Exception as error:  # the socket broke under us
            logger.warning(
                "sending %s to agent %s failed: %s", self.relay.request_id, self.agent.id, error
            )
            return self.perform(self.relay.send_failed())
        return self.perform(self.relay.request_sent())


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
        self,
        request_id: str,
        request: ToAgentRequest,
        *,
        deliver: ClientSink | None = None,
        chain: PrefixChain | None = None,
    ) -> AsyncGenerator[OutgoingMessage, None]:
        """Every message for the client, ending with a terminal response or an error.

        ``chain`` is a generation request's prompt as a prefix chain, for prefix-aware routing.

        Closing the iterator early (client gone) stops the agent and drains in the background.
        With ``deliver``, relayed tokens go to it as the agent's socket reads them, sparing a
        task wake-up per token; every other message still comes through the iterator, in order.
        """
        relay = RequestRelay(request_id, request, item_timeout_ms=self.item_timeout_ms)
        self.monitor.buffered(request_id, relay.kind)
        flight, actions = await self._acquire(relay, chain)
        message = flight.perform(actions)
        if message is not None:
            yield message
        if not relay.relaying:
            return  # ended in the buffer, or at once (a failed send)
        if deliver is not None:
            flight.deliver_tokens(deliver)
        try:
            while relay.relaying:
                message = flight.feed(await self._next_item(flight))
                if message is not None:
                    yield message
        finally:
            if relay.holds_slot:  # the client left, or its stream ended with an item timeout
                flight.perform(relay.client_gone())
                self._drain_later(flight)

    async def _acquire(
        self, relay: RequestRelay, chain: PrefixChain | None
    ) -> tuple[_Flight, Actions]:
        """The request with its slot (or without, if the buffer ended it), and what follows."""
        monitor = self.monitor
        try:
            lease = await self.buffer.acquire(chain)
        except BufferOverflowError:
            return _Flight(relay, monitor), relay.buffer_overflow()
        except BufferTimeoutError:
            return _Flight(relay, monitor), relay.buffer_timed_out()
        except ShuttingDownError:
            return _Flight(relay, monitor), relay.shut_down()
        except asyncio.CancelledError:
            _Flight(relay, monitor).perform(relay.client_gone())
            raise
        return _Flight(relay, monitor, lease), relay.slot_granted(lease.agent.name)

    async def _next_item(self, flight: _Flight) -> ChannelItem | None:
        """The next queued item, or None after a whole item timeout without any item."""
        channel = flight.channel
        assert channel is not None
        # Tokens often arrive in bursts; skip the timer when one is already waiting.
        if not channel.empty():
            return channel.get_nowait()
        timeout = self.item_timeout_ms / 1000
        last = asyncio.get_running_loop().time()
        while True:
            try:
                async with asyncio.timeout_at(last + timeout):
                    return await channel.get()
            except TimeoutError:
                if flight.token_at <= last:
                    return None
                last = flight.token_at  # tokens went straight to the client meanwhile

    def _drain_later(self, flight: _Flight) -> None:
        task = asyncio.create_task(self._drain(flight))
        self._drains.add(task)
        task.add_done_callback(self._drains.discard)

    async def _drain(self, flight: _Flight) -> None:
        """Keep the slot until the agent confirms it stopped or goes quiet."""
        relay = flight.relay
        try:
            while relay.holds_slot:
                flight.feed(await self._next_item(flight))
        finally:
            if relay.holds_slot:  # cancelled: the balancer is shutting down
                flight.perform(relay.shut_down())

    async def close(self) -> None:
        """Shutdown: abandon the drains (their slots are released)."""
        for task in list(self._drains):
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
