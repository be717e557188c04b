"""A minimal balancer-side management socket for agent tests.

It is not a balancer: it accepts agents on ``/api/v1/agent_socket/{id}``, records what they
report, and lets a test send ``SetState``, requests and stops, and read each request's responses.
It speaks the real protocol through the real codecs, on 127.0.0.1 and an ephemeral port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from paddler_tui.protocol.agent_socket import (
    BalancerToAgentMessage,
    DeregisterAgent,
    FromAgentNotificationEnvelope,
    FromAgentResponse,
    FromAgentResponseEnvelope,
    RegisterAgent,
    SetState,
    ToAgentNotificationEnvelope,
    ToAgentRequest,
    ToAgentRequestEnvelope,
    UpdateAgentHost,
    UpdateAgentStatus,
    Version,
    decode_agent_to_balancer_message,
    encode_balancer_to_agent_message,
)
from paddler_tui.protocol.agent_status import SlotAggregatedStatusSnapshot
from paddler_tui.protocol.desired_state import AgentDesiredState
from paddler_tui.protocol.embedding import EmbeddingResult
from paddler_tui.protocol.embedding import is_terminal as embedding_is_terminal
from paddler_tui.protocol.envelope import EmbeddingResponse, GeneratedToken, StopRespondingTo
from paddler_tui.protocol.generated_token import GeneratedTokenResult, is_terminal
from paddler_tui.protocol.ids import new_id


@dataclass
class AgentRecord:
    agent_id: str
    socket: ServerConnection
    name: str | None = None
    registrations: int = 0
    deregistered: bool = False
    snapshots: list[SlotAggregatedStatusSnapshot] = field(default_factory=list)
    hosts: list[UpdateAgentHost] = field(default_factory=list)
    responses: dict[str, asyncio.Queue[FromAgentResponse]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> SlotAggregatedStatusSnapshot:
        return self.snapshots[-1]


class BalancerEndpoint:
    def __init__(self) -> None:
        self.agents: dict[str, AgentRecord] = {}
        self.connected = asyncio.Event()
        self._server: Server | None = None
        self.port = 0

    @contextlib.asynccontextmanager
    async def running(self, port: int = 0) -> AsyncIterator[BalancerEndpoint]:
        async with serve(self._handle, "127.0.0.1", port, max_size=50 * 1024 * 1024) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            yield self

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _handle(self, socket: ServerConnection) -> None:
        agent_id = socket.request.path.rsplit("/", 1)[-1] if socket.request else ""
        record = AgentRecord(agent_id=agent_id, socket=socket)
        previous = self.agents.get(agent_id)
        if previous is not None:
            record.registrations = previous.registrations
        self.agents[agent_id] = record
        await self._send(record, ToAgentNotificationEnvelope(value=Version(version="4.1.0")))
        with contextlib.suppress(ConnectionClosed):
            await self._receive(record)

    async def _receive(self, record: AgentRecord) -> None:
        async for frame in record.socket:
            message = decode_agent_to_balancer_message(frame)
            if isinstance(message, FromAgentNotificationEnvelope):
                notification = message.value
                if isinstance(notification, RegisterAgent):
                    record.name = notification.name
                    record.registrations += 1
                    record.snapshots.append(notification.slot_aggregated_status_snapshot)
                    self.connected.set()
                elif isinstance(notification, UpdateAgentStatus):
                    record.snapshots.append(notification.slot_aggregated_status_snapshot)
                elif isinstance(notification, UpdateAgentHost):
                    record.hosts.append(notification)
                elif isinstance(notification, DeregisterAgent):
                    record.deregistered = True
            elif isinstance(message, FromAgentResponseEnvelope):
                record.responses[message.request_id].put_nowait(message.response)
            record.changed.set()

    async def _send(self, record: AgentRecord, message: BalancerToAgentMessage) -> None:
        await record.socket.send(encode_balancer_to_agent_message(message).decode())

    async def agent(self, timeout: float = 60) -> AgentRecord:
        await asyncio.wait_for(self.connected.wait(), timeout)
        return next(iter(self.agents.values()))

    async def set_state(self, record: AgentRecord, state: AgentDesiredState) -> None:
        await self._send(record, ToAgentNotificationEnvelope(value=SetState(desired_state=state)))

    async def stop(self, record: AgentRecord, request_id: str) -> None:
        await self._send(
            record, ToAgentNotificationEnvelope(value=StopRespondingTo(value=request_id))
        )

    async def request(self, record: AgentRecord, request: ToAgentRequest) -> str:
        request_id = new_id()
        await self._send(record, ToAgentRequestEnvelope(id=request_id, request=request))
        return request_id

    async def next_response(
        self, record: AgentRecord, request_id: str, timeout: float = 120
    ) -> FromAgentResponse:
        return await asyncio.wait_for(record.responses[request_id].get(), timeout)

    async def tokens(
        self, record: AgentRecord, request_id: str, timeout: float = 120
    ) -> list[GeneratedTokenResult]:
        """Every generated-token result of a request, through its terminal one."""
        results: list[GeneratedTokenResult] = []
        while True:
            response = await self.next_response(record, request_id, timeout)
            assert isinstance(response, GeneratedToken), response
            results.append(response.value)
            if is_terminal(response.value):
                return results

    async def embeddings(
        self, record: AgentRecord, request_id: str, timeout: float = 120
    ) -> list[EmbeddingResult]:
        results: list[EmbeddingResult] = []
        while True:
            response = await self.next_response(record, request_id, timeout)
            assert isinstance(response, EmbeddingResponse), response
            results.append(response.value)
            if embedding_is_terminal(response.value):
                return results

    async def wait_for_status(
        self, record: AgentRecord, predicate: object, timeout: float = 120
    ) -> SlotAggregatedStatusSnapshot:
        """Wait until the newest status snapshot satisfies ``predicate``; return it."""
        assert callable(predicate)
        async with asyncio.timeout(timeout):
            while True:
                if record.snapshots and predicate(record.status):
                    return record.status
                record.changed.clear()
                await record.changed.wait()
