"""Messages of the management WebSocket between the balancer and its agents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from pydantic import TypeAdapter

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_status import ModelMetadata, SlotAggregatedStatusSnapshot
from paddler_tui.protocol.desired_state import AgentDesiredState, ChatTemplate
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    EmbeddingResponse,
    ErrorEnvelope,
    GeneratedToken,
    GenerateEmbeddingBatch,
    StopRespondingTo,
)
from paddler_tui.protocol.generated_token import TOKEN_VARIANTS, TokenVariant
from paddler_tui.protocol.wire import (
    ExternallyTagged,
    NewtypeVariant,
    StructVariant,
    UnitVariant,
    WireModel,
)

# Balancer → agent.


class SetState(StructVariant):
    desired_state: AgentDesiredState


class Version(StructVariant):
    version: str


ToAgentNotification = Annotated[SetState | StopRespondingTo | Version, ExternallyTagged()]


class ToAgentNotificationEnvelope(NewtypeVariant):
    TAG = "Notification"
    value: ToAgentNotification


class GetChatTemplateOverride(UnitVariant):
    pass


class GetModelMetadata(UnitVariant):
    pass


ToAgentRequest = Annotated[
    ContinueFromConversationHistory
    | ContinueFromRawPrompt
    | GenerateEmbeddingBatch
    | GetChatTemplateOverride
    | GetModelMetadata,
    ExternallyTagged(),
]


class ToAgentRequestEnvelope(StructVariant):
    TAG = "Request"
    id: str
    request: ToAgentRequest


BalancerToAgentMessage = Annotated[
    ErrorEnvelope | ToAgentNotificationEnvelope | ToAgentRequestEnvelope, ExternallyTagged()
]

# Agent → balancer.


class DeregisterAgent(UnitVariant):
    pass


class RegisterAgent(StructVariant):
    name: str | None = None
    slot_aggregated_status_snapshot: SlotAggregatedStatusSnapshot


class UpdateAgentStatus(StructVariant):
    slot_aggregated_status_snapshot: SlotAggregatedStatusSnapshot


class ExtraBuffers(WireModel):
    """Whether llama.cpp's extra buffer types (weight repacking) are in use, and why."""

    enabled: bool
    reason: str


class PromptCacheRam(WireModel):
    """What the agent's prompt cache in host memory (``--prompt-cache-ram``) keeps."""

    states: int  # saved sequences
    bytes: int
    budget_bytes: int | None  # None: no limit; 0: the cache is off


class UpdateAgentHost(StructVariant):
    """A paddler-tui extension: how the agent runs llama.cpp on its host.

    Sent after registering and whenever it changes. Paddler's balancer drops the message
    as unknown, and nothing else depends on it, so an agent stays compatible.
    """

    extra_buffers: ExtraBuffers | None = None  # None until a model was first loaded
    prompt_cache_ram: PromptCacheRam | None = None  # None while no model is loaded


FromAgentNotification = Annotated[
    DeregisterAgent | RegisterAgent | UpdateAgentHost | UpdateAgentStatus, ExternallyTagged()
]


class FromAgentNotificationEnvelope(NewtypeVariant):
    TAG = "Notification"
    value: FromAgentNotification


class ChatTemplateOverride(NewtypeVariant):
    # ``null`` when no override is in effect on the agent.
    value: ChatTemplate | None


class ModelMetadataResponse(NewtypeVariant):
    TAG = "ModelMetadata"
    # ``null`` until a model has been loaded.
    value: ModelMetadata | None


FromAgentResponse = Annotated[
    ChatTemplateOverride | EmbeddingResponse | GeneratedToken | ModelMetadataResponse,
    ExternallyTagged(),
]


class FromAgentResponseEnvelope(StructVariant):
    TAG = "Response"
    # Always null from the agent; the balancer fills in the agent's name when forwarding.
    generated_by: str | None = None
    request_id: str
    response: FromAgentResponse


AgentToBalancerMessage = Annotated[
    ErrorEnvelope | FromAgentNotificationEnvelope | FromAgentResponseEnvelope, ExternallyTagged()
]

_TO_AGENT: TypeAdapter[BalancerToAgentMessage] = TypeAdapter(BalancerToAgentMessage)
_FROM_AGENT: TypeAdapter[AgentToBalancerMessage] = TypeAdapter(AgentToBalancerMessage)


def encode_balancer_to_agent_message(message: BalancerToAgentMessage) -> bytes:
    return codec.encode(_TO_AGENT, message)


def decode_balancer_to_agent_message(data: bytes | str) -> BalancerToAgentMessage:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    return codec.decode(_TO_AGENT, data)


def encode_agent_to_balancer_message(message: AgentToBalancerMessage) -> bytes:
    return codec.encode(_FROM_AGENT, message)


def decode_agent_to_balancer_message(data: bytes | str) -> AgentToBalancerMessage:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    return codec.decode(_FROM_AGENT, data)


# Token responses relayed without models: building, validating and re-encoding pydantic models
# for every token is most of what relaying one costs.

_TOKEN_VARIANTS: dict[str, type[TokenVariant]] = {
    variant.TAG: variant for variant in TOKEN_VARIANTS
}
_RESPONSE_FIELDS = frozenset(FromAgentResponseEnvelope.model_fields)


# Not frozen: a frozen dataclass's __init__ costs three times as much, and this runs per token.
@dataclass(slots=True)
class RelayedToken:
    """A valid :class:`FromAgentResponseEnvelope` holding a token (content, reasoning, tool call
    or undeterminable text), kept as the JSON of its ``response`` for splicing into client frames.
    """

    request_id: str
    variant: type[TokenVariant]
    text: str
    # ``{"GeneratedToken":{"ContentToken":"…"}}``, exactly as encoding the models writes it.
    response_json: bytes

    def response(self) -> GeneratedToken:
        """The response as models, for consumers that look inside it."""
        return GeneratedToken(value=self.variant(value=self.text))


def relayed_token(message: Any) -> RelayedToken | None:
    """Parsed JSON as a RelayedToken if it is a valid token response, else None.

    Accepts only what validating it as :data:`AgentToBalancerMessage` accepts (strict types, no
    unknown keys), so everything else, malformed frames included, is left to that validation.
    """
    if type(message) is not dict or len(message) != 1:
        return None
    envelope = message.get("Response")
    if type(envelope) is not dict or not envelope.keys() <= _RESPONSE_FIELDS:
        return None
    request_id = envelope.get("request_id")
    generated_by = envelope.get("generated_by")
    response = envelope.get("response")
    if type(request_id) is not str or not (generated_by is None or type(generated_by) is str):
        return None
    if type(response) is not dict or len(response) != 1:
        return None
    result = response.get("GeneratedToken")
    if type(result) is not dict or len(result) != 1:
        return None
    ((tag, text),) = result.items()
    variant = _TOKEN_VARIANTS.get(tag)
    if variant is None or type(text) is not str:
        return None
    # A round trip through orjson: compact, and only what was parsed (never the agent's bytes).
    return RelayedToken(request_id, variant, text, orjson.dumps(response))


def decode_agent_frame(data: bytes | str) -> AgentToBalancerMessage | RelayedToken:
    """:func:`decode_agent_to_balancer_message`, except that a token response is a RelayedToken.

    Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape.
    """
    message = codec.parse(data)
    token = relayed_token(message)
    return token if token is not None else codec.validate(_FROM_AGENT, message)
