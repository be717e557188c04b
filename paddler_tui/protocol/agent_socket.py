"""Messages of the management WebSocket between the balancer and its agents."""

from __future__ import annotations

from typing import Annotated

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
from paddler_tui.protocol.wire import (
    ExternallyTagged,
    NewtypeVariant,
    StructVariant,
    UnitVariant,
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


FromAgentNotification = Annotated[
    DeregisterAgent | RegisterAgent | UpdateAgentStatus, ExternallyTagged()
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
