"""The management WebSocket agents connect to: ``/api/v1/agent_socket/{agent_id}``.

This shell owns the connection: it reads frames and feeds them to the agent's
:class:`AgentController`, and writes what the controller queues through :class:`_Outbox`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from paddler_tui.protocol.agent_socket import (
    BalancerToAgentMessage,
    DeregisterAgent,
    FromAgentNotificationEnvelope,
    FromAgentResponseEnvelope,
    RegisterAgent,
    RelayedToken,
    ToAgentNotificationEnvelope,
    UpdateAgentHost,
    UpdateAgentStatus,
    Version,
    decode_agent_frame,
    encode_balancer_to_agent_message,
)
from paddler_tui.protocol.envelope import ErrorEnvelope
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.agent_pool import AgentAlreadyRegisteredError, AgentPool
from paddler_tui.server.balancer.cluster_state import ClusterState
from paddler_tui.server.balancer.mailbox import Mailbox
from paddler_tui.server.balancer.monitor_hub import MonitorHub

logger = logging.getLogger(__name__)

PADDLER_VERSION = "4.1.0"
POLICY_VIOLATION = 1008


class _Outbox:
    """One writer per socket, so frames from many requests never interleave or block readers."""

    def __init__(self, socket: WebSocket) -> None:
        self._socket = socket
        self._frames: Mailbox[str] = Mailbox()

    def send(self, message: BalancerToAgentMessage) -> None:
        """Queue a frame; it is written in order, after every frame queued before it."""
        self._frames.put_nowait(encode_balancer_to_agent_message(message).decode())

    async def run(self) -> None:
        while True:
            await self._socket.send_text(await self._frames.get())


async def serve_agent_socket(
    socket: WebSocket,
    agent_id: str,
    *,
    pool: AgentPool,
    cluster: ClusterState,
    monitor: MonitorHub,
) -> None:
    await socket.accept()
    outbox = _Outbox(socket)
    writing = asyncio.create_task(outbox.run())
    agent: AgentController | None = None
    try:
        outbox.send(ToAgentNotificationEnvelope(value=Version(version=PADDLER_VERSION)))
        agent = await _register(socket, agent_id, outbox, pool)
        if agent is None:
            return
        monitor.event("agent_joined", f"{agent.name or agent.id} joined", agent=agent)
        cluster.send_to(agent)
        await _serve(socket, agent, pool)
    except WebSocketDisconnect:
        pass
    finally:
        if agent is not None:
            pool.remove(agent)
            monitor.event("agent_left", f"{agent.name or agent.id} left", agent=agent)
            logger.info("agent %s (%s) left", agent.id, agent.name)
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writing
        with contextlib.suppress(Exception):
            await socket.close()


async def _register(
    socket: WebSocket, agent_id: str, outbox: _Outbox, pool: AgentPool
) -> AgentController | None:
    message = await _receive(socket)
    if not (
        isinstance(message, FromAgentNotificationEnvelope)
        and isinstance(message.value, RegisterAgent)
    ):
        logger.warning("agent %s did not register first; closing", agent_id)
        await socket.close(POLICY_VIOLATION, "RegisterAgent must be the first message")
        return None
    registration = message.value
    agent = AgentController(
        agent_id=agent_id,
        name=registration.name,
        snapshot=registration.slot_aggregated_status_snapshot,
        send=outbox.send,
    )
    try:
        pool.register(agent)
    except AgentAlreadyRegisteredError:
        logger.warning("agent id %s is already registered; closing the second socket", agent_id)
        await socket.close(POLICY_VIOLATION, f"agent {agent_id} is already registered")
        return None
    logger.info("agent %s (%s) joined", agent_id, registration.name)
    return agent


async def _serve(socket: WebSocket, agent: AgentController, pool: AgentPool) -> None:
    while True:
        message = await _receive(socket)
        if isinstance(message, RelayedToken):
            agent.deliver(message.request_id, message)
        elif isinstance(message, FromAgentResponseEnvelope):
            agent.deliver(message.request_id, message.response)
        elif isinstance(message, FromAgentNotificationEnvelope):
            notification = message.value
            if isinstance(notification, UpdateAgentStatus):
                if agent.apply_status(notification.slot_aggregated_status_snapshot):
                    pool.changed.notify()
            elif isinstance(notification, UpdateAgentHost):
                if agent.apply_host(notification):
                    pool.changed.notify()
            elif isinstance(notification, DeregisterAgent):
                return
        elif isinstance(message, ErrorEnvelope):
            logger.warning("agent %s reported an error: %s", agent.id, message.error)


async def _receive(socket: WebSocket) -> object:
    """The next message; None for a malformed or binary frame (logged, then ignored)."""
    frame = await socket.receive()
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    text = frame.get("text")
    if text is None:
        logger.warning("ignoring a binary frame from an agent")
        return None
    try:
        return decode_agent_frame(text)
    except ProtocolError as error:
        logger.warning("ignoring a malformed message from an agent: %s", error)
        return None
