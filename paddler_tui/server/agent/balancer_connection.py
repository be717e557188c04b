"""The agent's link to the balancer's management socket: register, report, serve, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from paddler_tui.api_key import authorization_headers
from paddler_tui.net_address import HostPort
from paddler_tui.protocol.agent_socket import (
    AgentToBalancerMessage,
    DeregisterAgent,
    FromAgentNotificationEnvelope,
    FromAgentResponse,
    FromAgentResponseEnvelope,
    GetChatTemplateOverride,
    GetModelMetadata,
    RegisterAgent,
    SetState,
    ToAgentNotificationEnvelope,
    ToAgentRequestEnvelope,
    UpdateAgentHost,
    UpdateAgentStatus,
    Version,
    decode_balancer_to_agent_message,
    encode_agent_to_balancer_message,
)
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    ErrorEnvelope,
    GenerateEmbeddingBatch,
    StopRespondingTo,
)
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.server.agent.running_requests import RunningRequests
from paddler_tui.server.agent.state_applier import StateApplier
from paddler_tui.server.agent.status import AgentStatus
from paddler_tui.server.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

PADDLER_VERSION = "4.1.0"
RECONNECT_INTERVAL_S = 1.0
# A status report goes out on every change, and at least this often.
STATUS_REPORT_INTERVAL_S = 1.0
MAX_MESSAGE_BYTES = 50 * 1024 * 1024


class BalancerConnection:
    """Keeps one agent connected to its balancer until :meth:`run`'s ``stopping`` is set."""

    def __init__(
        self,
        *,
        management_addr: HostPort,
        agent_id: str,
        name: str | None,
        status: AgentStatus,
        requests: RunningRequests,
        applier: StateApplier,
        api_key: str | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.url = f"ws://{management_addr}/api/v1/agent_socket/{agent_id}"
        self._headers = authorization_headers(api_key)
        self._name = name
        self._status = status
        self._requests = requests
        self._applier = applier
        self._heartbeat = heartbeat if heartbeat is not None else Heartbeat()
        self._outgoing: asyncio.Queue[bytes] = asyncio.Queue()
        self._sent_host: UpdateAgentHost | None = None  # on this connection

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                async with connect(
                    self.url,
                    max_size=MAX_MESSAGE_BYTES,
                    open_timeout=5,
                    ping_interval=self._heartbeat.interval_s,
                    ping_timeout=self._heartbeat.timeout_s,
                    additional_headers=self._headers,
                ) as socket:
                    logger.info("connected to %s", self.url)
                    await self._session(socket, stopping)
            except (OSError, WebSocketException, TimeoutError) as error:
                logger.warning("cannot reach the balancer: %s", error or type(error).__name__)
            finally:
                # Whatever the socket carried is gone; the balancer already failed those requests.
                self._requests.stop_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), RECONNECT_INTERVAL_S)

    def _send(self, message: AgentToBalancerMessage) -> None:
        self._outgoing.put_nowait(encode_agent_to_balancer_message(message))

    def _respond(self, request_id: str, response: FromAgentResponse) -> None:
        self._send(FromAgentResponseEnvelope(request_id=request_id, response=response))

    async def _session(self, socket: ClientConnection, stopping: asyncio.Event) -> None:
        self._outgoing = asyncio.Queue()
        register = RegisterAgent(
            name=self._name, slot_aggregated_status_snapshot=self._status.snapshot()
        )
        await socket.send(
            encode_agent_to_balancer_message(FromAgentNotificationEnvelope(value=register)),
            text=True,
        )
        self._sent_host = None
        self._send_host()
        tasks = [
            asyncio.create_task(self._read(socket)),
            asyncio.create_task(self._write(socket)),
            asyncio.create_task(self._report_status()),
            asyncio.create_task(stopping.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if not stopping.is_set():
            logger.warning("balancer connection lost: %s", _why_closed(socket, done))
        else:
            deregister = FromAgentNotificationEnvelope(value=DeregisterAgent())
            with contextlib.suppress(WebSocketException, OSError, TimeoutError):
                await socket.send(encode_agent_to_balancer_message(deregister), text=True)
                await asyncio.wait_for(socket.close(), 1)

    async def _write(self, socket: ClientConnection) -> None:
        while True:
            await socket.send(await self._outgoing.get(), text=True)

    async def _report_status(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._status.wait_for_change(), STATUS_REPORT_INTERVAL_S)
            update = UpdateAgentStatus(slot_aggregated_status_snapshot=self._status.snapshot())
            self._send(FromAgentNotificationEnvelope(value=update))
            self._send_host()

    def _send_host(self) -> None:
        host = self._status.host(prompt_cache_ram=self._requests.prompt_cache_ram())
        if host != self._sent_host and host.extra_buffers is not None:
            self._sent_host = host
            self._send(FromAgentNotificationEnvelope(value=host))

    async def _read(self, socket: ClientConnection) -> None:
        async for frame in socket:
            if isinstance(frame, bytes):
                continue
            try:
                message = decode_balancer_to_agent_message(frame)
            except ProtocolError as error:
                logger.warning("ignoring a message from the balancer: %s", error)
                continue
            self._dispatch(message)

    def _dispatch(
        self, message: ErrorEnvelope | ToAgentNotificationEnvelope | ToAgentRequestEnvelope
    ) -> None:
        if isinstance(message, ErrorEnvelope):
            logger.warning("balancer reported an error for %s: %s", message.request_id, message)
        elif isinstance(message, ToAgentNotificationEnvelope):
            notification = message.value
            if isinstance(notification, SetState):
                self._applier.set_desired(notification.desired_state)
            elif isinstance(notification, StopRespondingTo):
                self._requests.stop(notification.value)
            elif isinstance(notification, Version) and notification.version != PADDLER_VERSION:
                logger.warning(
                    "balancer speaks Paddler %s, this agent %s",
                    notification.version,
                    PADDLER_VERSION,
                )
        else:
            self._serve_request(message)

    def _serve_request(self, message: ToAgentRequestEnvelope) -> None:
        request = message.request
        if isinstance(
            request,
            ContinueFromConversationHistory | ContinueFromRawPrompt | GenerateEmbeddingBatch,
        ):
            self._requests.start(message.id, request.value, self._respond)
        elif isinstance(request, GetModelMetadata):
            self._respond(message.id, self._requests.model_metadata())
        elif isinstance(request, GetChatTemplateOverride):
            self._respond(message.id, self._requests.chat_template_override())


def _why_closed(socket: ClientConnection, done: set[asyncio.Task[Any]]) -> str:
    """Why a session ended: an unanswered heartbeat reads "keepalive ping timeout"."""
    for task in done:
        if not task.cancelled() and (error := task.exception()) is not None:
            return str(error) or type(error).__name__
    return f"closed by the balancer ({socket.close_code} {socket.close_reason or ''})".strip()
