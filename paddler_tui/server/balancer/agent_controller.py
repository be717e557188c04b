"""The balancer's handle on one connected agent: its status, slots and response channels.

The agent socket (``web/agent_socket.py``) owns the connection: it feeds the controller what the
agent says, and gives it a plain function that queues a frame for the agent. The controller
never waits on the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from paddler_tui.protocol.agent_socket import (
    BalancerToAgentMessage,
    FromAgentResponse,
    RelayedToken,
    SetState,
    ToAgentNotificationEnvelope,
    ToAgentRequest,
    ToAgentRequestEnvelope,
    UpdateAgentHost,
)
from paddler_tui.protocol.agent_status import AgentControllerSnapshot, SlotAggregatedStatusSnapshot
from paddler_tui.protocol.desired_state import AgentDesiredState
from paddler_tui.protocol.envelope import StopRespondingTo
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.mailbox import Mailbox
from paddler_tui.server.balancer.routing.policy import RoutingDecision
from paddler_tui.server.balancer.routing.prefix_memory import PrefixMemory

logger = logging.getLogger(__name__)

# Queues a frame for the agent without waiting; the agent socket writes it.
SendToAgent = Callable[[BalancerToAgentMessage], None]


class AgentDisconnectedError(Exception):
    """The agent's socket closed while a request was waiting on it."""


class BalancerShuttingDownError(Exception):
    """The balancer is shutting down while a request was waiting on the agent."""


# What a response channel carries: the agent's responses, or why no more will come.
ChannelItem = FromAgentResponse | RelayedToken | AgentDisconnectedError | BalancerShuttingDownError


class RequestChannel(Mailbox[ChannelItem]):
    """What the agent says about one request, in order, for the task that forwards it.

    With ``tokens_to`` set, a relayed token that finds nothing queued before it is handed over
    at once, in the agent socket's task, instead of waking the forwarding task.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tokens_to: Callable[[RelayedToken], None] | None = None

    def put_nowait(self, item: ChannelItem) -> None:
        tokens_to = self.tokens_to
        if tokens_to is not None and type(item) is RelayedToken and self.empty():
            tokens_to(item)
        else:
            super().put_nowait(item)


class AgentController:
    """One registered agent.

    ``slots_processing`` here is the balancer's own count of requests it sent and has not seen
    finish; the agent's reported number is ignored (Paddler bug #56).
    """

    def __init__(
        self,
        *,
        agent_id: str,
        name: str | None,
        snapshot: SlotAggregatedStatusSnapshot,
        send: SendToAgent,
    ) -> None:
        self.id = agent_id
        self.name = name
        self.status = snapshot
        self.host: UpdateAgentHost = UpdateAgentHost()  # a paddler-tui agent's extension report
        self.slots_processing = 0
        # Buffered requests waiting for this agent in particular (pinned by prefix routing).
        self.waiting = 0
        # The prompts it was sent recently, as prefix chains.
        self.prefixes = PrefixMemory()
        # Why it was chosen for its requests, and the prompt tokens of those it finished (how
        # many of them a cache held); since it registered.
        self.routed: Counter[RoutingDecision] = Counter()
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0
        self._send = send
        self._channels: dict[str, RequestChannel] = {}
        self.connected = True

    @property
    def slots_total(self) -> int:
        return self.status.slots_total

    @property
    def has_free_slot(self) -> bool:
        return self.connected and self.slots_processing < self.slots_total

    @property
    def routable(self) -> bool:
        """Connected with slots: requests may go to it now or wait for it."""
        return self.connected and self.slots_total > 0

    @property
    def load(self) -> int:
        return self.slots_processing + self.waiting

    def count_usage(self, usage: TokenUsage) -> None:
        """A generation it served finished with this usage."""
        self.prompt_tokens += usage.prompt_tokens
        self.cached_prompt_tokens += usage.cached_prompt_tokens

    def apply_status(self, snapshot: SlotAggregatedStatusSnapshot) -> bool:
        """Take a newer status report; return whether anything visible changed."""
        if snapshot.version < self.status.version:
            return False
        changed = snapshot.model_copy(update={"slots_processing": 0, "version": 0}) != (
            self.status.model_copy(update={"slots_processing": 0, "version": 0})
        )
        if snapshot.model_path != self.status.model_path:
            self.prefixes.clear()  # another model: its caches start empty
        self.status = snapshot
        return changed

    def apply_host(self, host: UpdateAgentHost) -> bool:
        """Take the agent's host report; return whether it changed."""
        changed = host != self.host
        self.host = host
        return changed

    def snapshot(self) -> AgentControllerSnapshot:
        status = self.status
        return AgentControllerSnapshot(
            desired_slots_total=status.desired_slots_total,
            download_current=status.download_current,
            download_filename=status.download_filename,
            download_indeterminate=status.download_indeterminate,
            download_total=status.download_total,
            id=self.id,
            issues=status.issues,
            model_path=status.model_path,
            name=self.name,
            slots_processing=self.slots_processing,
            slots_total=status.slots_total,
            state_application_status=status.state_application_status,
            uses_chat_template_override=status.uses_chat_template_override,
        )

    # Requests.

    def open_channel(self, request_id: str) -> RequestChannel:
        channel = RequestChannel()
        if not self.connected:
            channel.put_nowait(AgentDisconnectedError())
        self._channels[request_id] = channel
        return channel

    def close_channel(self, request_id: str) -> None:
        self._channels.pop(request_id, None)

    def send_request(self, request_id: str, request: ToAgentRequest) -> None:
        self._send(ToAgentRequestEnvelope(id=request_id, request=request))

    def send_stop(self, request_id: str) -> None:
        with contextlib.suppress(Exception):  # a gone agent has nothing left to stop
            self._send(ToAgentNotificationEnvelope(value=StopRespondingTo(value=request_id)))

    def send_state(self, state: AgentDesiredState) -> None:
        with contextlib.suppress(Exception):  # one agent's broken link must not stop the others
            self._send(ToAgentNotificationEnvelope(value=SetState(desired_state=state)))

    async def query(
        self, request: ToAgentRequest, timeout_s: float
    ) -> FromAgentResponse | RelayedToken:
        """Ask the agent something that has one answer (metadata, template override).

        Raises TimeoutError or AgentDisconnectedError.
        """
        request_id = new_id()
        channel = self.open_channel(request_id)
        try:
            self.send_request(request_id, request)
            item = await asyncio.wait_for(channel.get(), timeout_s)
        finally:
            self.close_channel(request_id)
        if isinstance(item, Exception):
            raise item
        return item

    def deliver(self, request_id: str, response: FromAgentResponse | RelayedToken) -> None:
        channel = self._channels.get(request_id)
        if channel is None:
            logger.debug("agent %s answered unknown request %s", self.id, request_id)
            return
        channel.put_nowait(response)

    def disconnect(self) -> None:
        """The socket is gone: every waiting request learns it at once."""
        self.connected = False
        self.interrupt(AgentDisconnectedError())

    def interrupt(self, reason: AgentDisconnectedError | BalancerShuttingDownError) -> None:
        for channel in self._channels.values():
            channel.put_nowait(reason)
