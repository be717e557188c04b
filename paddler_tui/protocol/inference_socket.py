"""Messages of the inference service: NDJSON lines of the REST streams and socket frames.

Client → balancer is :data:`InferenceClientMessage` (only on the WebSocket); balancer → client is
:data:`InferenceServerMessage` (every NDJSON line and every socket frame).
``GenerateEmbeddingBatch`` is accepted on the socket as a paddler-tui extension; Paddler ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import orjson
from pydantic import TypeAdapter

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_socket import RelayedToken
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    EmbeddingResponse,
    ErrorEnvelope,
    GeneratedToken,
    GenerateEmbeddingBatch,
    StopRespondingTo,
)
from paddler_tui.protocol.wire import (
    ExternallyTagged,
    NewtypeVariant,
    StructVariant,
    UnitVariant,
)

# Client → balancer.

InferenceRequest = Annotated[
    ContinueFromConversationHistory | ContinueFromRawPrompt | GenerateEmbeddingBatch,
    ExternallyTagged(),
]


class RequestEnvelope(StructVariant):
    TAG = "Request"
    id: str
    request: InferenceRequest


ClientNotification = Annotated[StopRespondingTo, ExternallyTagged()]


class ClientNotificationEnvelope(NewtypeVariant):
    TAG = "Notification"
    value: ClientNotification


InferenceClientMessage = Annotated[
    ErrorEnvelope | ClientNotificationEnvelope | RequestEnvelope, ExternallyTagged()
]

# Balancer → client.


class Timeout(UnitVariant):
    """Defined by Paddler but never sent; timeouts arrive as error envelopes."""


class TooManyBufferedRequests(UnitVariant):
    """Defined by Paddler but never sent; overflow arrives as an error envelope."""


InferenceResponse = Annotated[
    EmbeddingResponse | GeneratedToken | Timeout | TooManyBufferedRequests, ExternallyTagged()
]


class ResponseEnvelope(StructVariant):
    TAG = "Response"
    generated_by: str | None = None
    request_id: str
    response: InferenceResponse


class TokenGenerationDisabledNotification(UnitVariant):
    TAG = "TokenGenerationDisabled"


class TokenGenerationEnabledNotification(UnitVariant):
    TAG = "TokenGenerationEnabled"


ServerNotification = Annotated[
    TokenGenerationDisabledNotification | TokenGenerationEnabledNotification, ExternallyTagged()
]


class ServerNotificationEnvelope(NewtypeVariant):
    TAG = "Notification"
    value: ServerNotification


InferenceServerMessage = Annotated[
    ErrorEnvelope | ServerNotificationEnvelope | ResponseEnvelope, ExternallyTagged()
]


class ResponseHead:
    """Who answers which request: the part every ResponseEnvelope of one request shares."""

    __slots__ = ("generated_by", "json", "request_id")

    def __init__(self, generated_by: str | None, request_id: str) -> None:
        self.generated_by = generated_by
        self.request_id = request_id
        # The envelope's JSON up to its ``response`` value.
        self.json = b'{"Response":{"generated_by":%b,"request_id":%b,"response":' % (
            orjson.dumps(generated_by),
            orjson.dumps(request_id),
        )


@dataclass(slots=True)  # not frozen, like RelayedToken: built per token
class RelayedResponse:
    """A :class:`ResponseEnvelope` of a relayed token, encoded by splicing the agent's JSON."""

    head: ResponseHead
    token: RelayedToken

    def envelope(self) -> ResponseEnvelope:
        return ResponseEnvelope(
            generated_by=self.head.generated_by,
            request_id=self.head.request_id,
            response=self.token.response(),
        )


# What the balancer sends a client: a message, or a relayed token not built into one.
OutgoingMessage = InferenceServerMessage | RelayedResponse


def typed_message(message: OutgoingMessage) -> InferenceServerMessage:
    """The message as models, for consumers that look inside tokens."""
    return message.envelope() if isinstance(message, RelayedResponse) else message


_CLIENT: TypeAdapter[InferenceClientMessage] = TypeAdapter(InferenceClientMessage)
_SERVER: TypeAdapter[InferenceServerMessage] = TypeAdapter(InferenceServerMessage)


def encode_inference_client_message(message: InferenceClientMessage) -> bytes:
    return codec.encode(_CLIENT, message)


def decode_inference_client_message(data: bytes | str) -> InferenceClientMessage:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    return codec.decode(_CLIENT, data)


def encode_inference_server_message(message: OutgoingMessage) -> bytes:
    """One NDJSON line or socket frame, without the trailing newline."""
    if isinstance(message, RelayedResponse):
        return message.head.json + message.token.response_json + b"}}"
    return codec.encode(_SERVER, message)


def decode_inference_server_message(data: bytes | str) -> InferenceServerMessage:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    return codec.decode(_SERVER, data)
