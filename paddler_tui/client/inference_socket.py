"""The multiplexed inference WebSocket: many requests, one connection, one stream per id."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from paddler_tui.api_key import authorization_headers
from paddler_tui.client.errors import BalancerUnreachableError, HttpStatusError
from paddler_tui.protocol.embedding import EmbeddingDone
from paddler_tui.protocol.envelope import (
    EmbeddingResponse,
    ErrorEnvelope,
    GeneratedToken,
    GenerateEmbeddingBatch,
    StopRespondingTo,
)
from paddler_tui.protocol.errors import ProtocolError
from paddler_tui.protocol.generated_token import is_terminal
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.inference_socket import (
    ClientNotificationEnvelope,
    InferenceRequest,
    InferenceServerMessage,
    RequestEnvelope,
    ResponseEnvelope,
    ServerNotificationEnvelope,
    TokenGenerationEnabledNotification,
    decode_inference_server_message,
    encode_inference_client_message,
)

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 50 * 1024 * 1024


class _Closed:
    """Put in every open stream when the connection ends."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def ends_stream(message: InferenceServerMessage, *, embedding: bool) -> bool:
    """Whether ``message`` is the last one of its request.

    An embedding batch ends only with the balancer's final ``Done``: its chunks' errors and
    other results are part of the stream.
    """
    if embedding:
        return (
            isinstance(message, ResponseEnvelope)
            and isinstance(message.response, EmbeddingResponse)
            and isinstance(message.response.value, EmbeddingDone)
        )
    if isinstance(message, ErrorEnvelope):
        return True
    return (
        isinstance(message, ResponseEnvelope)
        and isinstance(message.response, GeneratedToken)
        and is_terminal(message.response.value)
    )


class RequestStream:
    """The messages of one request, in order, through its last one."""

    def __init__(self, socket: InferenceSocket, request_id: str, *, embedding: bool) -> None:
        self.request_id = request_id
        self._socket = socket
        self._embedding = embedding
        self._queue: asyncio.Queue[InferenceServerMessage | _Closed] = asyncio.Queue()
        self.finished = False

    def _put(self, item: InferenceServerMessage | _Closed) -> None:
        self._queue.put_nowait(item)

    def __aiter__(self) -> AsyncIterator[InferenceServerMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[InferenceServerMessage]:
        while not self.finished:
            item = await self._queue.get()
            if isinstance(item, _Closed):
                self.finished = True
                raise BalancerUnreachableError(item.reason)
            if ends_stream(item, embedding=self._embedding):
                self.finished = True
                self._socket._forget(self.request_id)
            yield item

    async def stop(self) -> None:
        """Ask the balancer to stop this request (StopRespondingTo); the stream ends here."""
        if not self.finished:
            self.finished = True
            self._socket._forget(self.request_id)
            await self._socket._send_stop(self.request_id)


class InferenceSocket:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._streams: dict[str, RequestStream] = {}
        self.token_generation_enabled: bool | None = None
        self.on_mode_change: Callable[[bool], None] | None = None
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls, addr: str, *, open_timeout: float = 5, api_key: str | None = None
    ) -> InferenceSocket:
        """Raise :class:`HttpStatusError` if the handshake is refused (403: wrong API key)."""
        url = f"ws://{addr}/api/v1/inference_socket"
        try:
            connection = await connect(
                url,
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=open_timeout,
                additional_headers=authorization_headers(api_key),
            )
        except InvalidStatus as error:
            code = error.response.status_code
            raise HttpStatusError(code, "inference socket refused") from error
        except (OSError, WebSocketException, TimeoutError) as error:
            raise BalancerUnreachableError(f"{url}: {error}") from error
        return cls(connection)

    @property
    def closed(self) -> bool:
        return self._reader.done()

    async def request(
        self, request: InferenceRequest, *, request_id: str | None = None
    ) -> RequestStream:
        request_id = request_id or new_id()
        stream = RequestStream(
            self, request_id, embedding=isinstance(request, GenerateEmbeddingBatch)
        )
        if self.closed:
            stream._put(_Closed("the inference socket is closed"))
            return stream
        self._streams[request_id] = stream
        await self._send(
            encode_inference_client_message(RequestEnvelope(id=request_id, request=request))
        )
        return stream

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._connection.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    async def __aenter__(self) -> InferenceSocket:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _forget(self, request_id: str) -> None:
        self._streams.pop(request_id, None)

    async def _send_stop(self, request_id: str) -> None:
        stop = ClientNotificationEnvelope(value=StopRespondingTo(value=request_id))
        with contextlib.suppress(BalancerUnreachableError):
            await self._send(encode_inference_client_message(stop))

    async def _send(self, data: bytes) -> None:
        try:
            await self._connection.send(data.decode())
        except (OSError, WebSocketException) as error:
            raise BalancerUnreachableError(str(error)) from error

    async def _read(self) -> None:
        reason = "the balancer closed the inference socket"
        try:
            async for frame in self._connection:
                self._dispatch(frame)
        except (OSError, WebSocketException) as error:
            reason = f"the inference socket broke: {error}"
        finally:
            for stream in self._streams.values():
                stream._put(_Closed(reason))
            self._streams.clear()

    def _dispatch(self, frame: str | bytes) -> None:
        try:
            message = decode_inference_server_message(frame)
        except ProtocolError as error:
            # A malformed frame cannot be routed; say so on every open stream's log only.
            logger.warning("ignoring a malformed inference socket frame: %s", error)
            return
        if isinstance(message, ServerNotificationEnvelope):
            enabled = isinstance(message.value, TokenGenerationEnabledNotification)
            self.token_generation_enabled = enabled
            if self.on_mode_change is not None:
                self.on_mode_change(enabled)
            return
        stream = self._streams.get(message.request_id)
        if stream is not None:
            stream._put(message)
