"""The multiplexed inference WebSocket: ``/api/v1/inference_socket``.

Many requests share one socket, each under the client's own id. Beyond Paddler, a
``GenerateEmbeddingBatch`` request is served here too, and a request that fails validation is
answered with an error envelope instead of closing the whole socket.

A client that stops reading is treated like one that stops reading its HTTP stream: once a
write has waited the item timeout, its requests are stopped (their slots come back) and the
socket is dropped. At shutdown, in-flight requests get their "balancer is shutting down" error,
then the socket closes with 1001 "Server shutting down", as Paddler's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.websockets import WebSocket

from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    ErrorEnvelope,
    GenerateEmbeddingBatch,
    StopRespondingTo,
)
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.protocol.inference_socket import (
    ClientNotificationEnvelope,
    OutgoingMessage,
    RequestEnvelope,
    ServerNotificationEnvelope,
    TokenGenerationDisabledNotification,
    TokenGenerationEnabledNotification,
    decode_inference_client_message,
    encode_inference_server_message,
    typed_message,
)
from paddler_tui.server.balancer.balancer import Balancer
from paddler_tui.server.balancer.embedding_batch import embedding_done
from paddler_tui.server.balancer.inference_requests import (
    RequestRejectedError,
    check_embedding_request,
    check_token_request,
    stream_request,
    token_generation_disabled,
)
from paddler_tui.server.balancer.mailbox import Mailbox
from paddler_tui.server.balancer.request_errors import error_envelope
from paddler_tui.server.balancer.web.write_timeout import WriteTimeout

logger = logging.getLogger(__name__)

GOING_AWAY = 1001
SHUTDOWN_REASON = "Server shutting down"
# How long a shutting-down socket waits for its requests' errors to be queued before closing.
REQUESTS_END_GRACE_S = 1.0


class InferenceSocketSession:
    def __init__(self, socket: WebSocket, balancer: Balancer) -> None:
        self._socket = socket
        self._balancer = balancer
        self._outgoing: Mailbox[str | None] = Mailbox()  # None: close, the balancer stops
        self._requests: dict[str, asyncio.Task[None]] = {}

    def _send(self, message: OutgoingMessage) -> None:
        self._outgoing.put_nowait(encode_inference_server_message(message).decode())

    async def run(self) -> None:
        await self._socket.accept()
        cluster = self._balancer.cluster
        if not cluster.token_generation_enabled:
            self._send(ServerNotificationEnvelope(value=TokenGenerationDisabledNotification()))
        sessions = self._balancer.socket_sessions
        this = asyncio.current_task()
        assert this is not None  # an ASGI app always runs in a task
        sessions.add(this)
        # Reading ends with the client, writing with a client that reads nothing or a close.
        ending = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        background = [
            asyncio.create_task(self._announce_mode_changes()),
            asyncio.create_task(self._close_at_shutdown()),
        ]
        try:
            await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            tasks = [*self._requests.values(), *ending, *background]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            sessions.discard(this)

    async def _write(self) -> None:
        timeout = self._balancer.item_timeout_s
        with WriteTimeout(timeout) as writes:
            while (text := await self._outgoing.get()) is not None:
                writes.begin()
                await self._socket.send_text(text)
                writes.end()
        if writes.timed_out:
            logger.warning(
                "a client read nothing for %.1f s; closing its inference socket", timeout
            )
            return
        with contextlib.suppress(Exception):  # a client already gone needs no close frame
            async with asyncio.timeout(timeout):
                await self._socket.close(GOING_AWAY, SHUTDOWN_REASON)

    async def _close_at_shutdown(self) -> None:
        await self._balancer.stopping.wait()
        if self._requests:  # they end at once with "balancer is shutting down"
            await asyncio.wait(self._requests.values(), timeout=REQUESTS_END_GRACE_S)
        self._outgoing.put_nowait(None)

    async def _announce_mode_changes(self) -> None:
        cluster = self._balancer.cluster
        generation = cluster.mode_changed.generation
        while True:
            generation = await cluster.mode_changed.wait_after(generation)
            notification = (
                TokenGenerationEnabledNotification()
                if cluster.token_generation_enabled
                else TokenGenerationDisabledNotification()
            )
            self._send(ServerNotificationEnvelope(value=notification))

    async def _read(self) -> None:
        while True:
            frame = await self._socket.receive()
            if frame["type"] == "websocket.disconnect":
                return
            text = frame.get("text")
            if text is None:
                continue  # binary frames are ignored, as in Paddler
            try:
                message = decode_inference_client_message(text)
            except ProtocolError as error:
                logger.info("ignoring a malformed inference socket message: %s", error)
                continue
            if isinstance(message, RequestEnvelope):
                self._start(message)
            elif isinstance(message, ClientNotificationEnvelope):
                notification = message.value
                if isinstance(notification, StopRespondingTo):
                    task = self._requests.get(notification.value)
                    if task is not None:
                        task.cancel()
            elif isinstance(message, ErrorEnvelope):
                logger.info("client reported an error: %s", message.error)

    def _start(self, message: RequestEnvelope) -> None:
        request_id = message.id
        if request_id in self._requests:
            self._send(
                error_envelope(
                    request_id,
                    (400, f'Request id "{request_id}" is already in flight on this connection'),
                )
            )
            return
        task = asyncio.create_task(self._serve(message))
        self._requests[request_id] = task
        task.add_done_callback(lambda _: self._requests.pop(request_id, None))

    async def _serve(self, message: RequestEnvelope) -> None:
        request_id, request = message.id, message.request
        try:
            if not isinstance(request, GenerateEmbeddingBatch):
                check_token_request(self._balancer, request)
            else:
                check_embedding_request(self._balancer)
        except RequestRejectedError as rejected:
            if isinstance(request, ContinueFromConversationHistory | ContinueFromRawPrompt) and (
                rejected.status_code == 501
            ):
                self._send(token_generation_disabled(request_id))
            else:
                self._send(error_envelope(request_id, (rejected.status_code, rejected.message)))
            if isinstance(request, GenerateEmbeddingBatch):
                # An embedding stream always ends with its one Done, refused or not.
                self._send(embedding_done(request_id))
            return
        if not isinstance(request, GenerateEmbeddingBatch):
            # Tokens go from the agent's socket to this one's writer, not through this task.
            stream = stream_request(self._balancer, request_id, request, deliver_tokens=self._send)
        else:
            stream = stream_request(
                self._balancer, request_id, request, embedding_done_id=request_id
            )
        async with contextlib.aclosing(stream):
            async for outgoing in stream:
                if not isinstance(request, GenerateEmbeddingBatch):
                    self._send(outgoing)
                    continue
                # Embedding chunks run under ids of their own; the client knows only its own.
                self._send(typed_message(outgoing).model_copy(update={"request_id": request_id}))
