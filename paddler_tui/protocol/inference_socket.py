"""Messages of the inference service: NDJSON lines of the REST streams and socket frames.

Client → balancer is :data:`InferenceClientMessage` (only on the WebSocket); balancer → client is
:data:`InferenceServerMessage` (every NDJSON line and every socket frame).
``GenerateEmbeddingBatch`` is accepted on the socket as a paddler-tui extension; Paddler ignores it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import TypeAdapter

from paddler_tui.protocol import codec
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

_CLIENT: TypeAdapter[InferenceClientMessage] = TypeAdapter(InferenceClientMessage)
_SERVER: TypeAdapter[InferenceServerMessage] = TypeAdapter(InferenceServerMessage)


def encode_inference_client_message(message: InferenceClientMessage) -> bytes:
    return codec.encode(_CLIENT, message)


def decode_inference_client_message(data: bytes | str) -> InferenceClientMessage:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    return codec.decode(_CLIENT, data)


def encode_inference_server_message(message: InferenceServerMessage) -> bytes:
    """One NDJSON line or socket frame, without the trailing newline."""
    return codec.encode(_SERVER, message)


def decode_inference_server_message(data: bytes | str) -> InferenceServerMessage:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    return codec.decode(_SERVER, data)
