"""The cluster's desired state: what the operator PUTs and what agents are told to apply."""

from __future__ import annotations

from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.model_source import AgentDesiredModel, NoModel
from paddler_tui.protocol.wire import WireModel


class ChatTemplate(WireModel):
    content: str


class AgentDesiredState(WireModel):
    chat_template_override: ChatTemplate | None = None
    inference_parameters: InferenceParameters
    model: AgentDesiredModel
    multimodal_projection: AgentDesiredModel


class BalancerDesiredState(WireModel):
    chat_template_override: ChatTemplate | None = None
    inference_parameters: InferenceParameters
    model: AgentDesiredModel
    multimodal_projection: AgentDesiredModel
    use_chat_template_override: bool

    @classmethod
    def default(cls) -> BalancerDesiredState:
        return cls(
            chat_template_override=None,
            inference_parameters=InferenceParameters.default(),
            model=NoModel(),
            multimodal_projection=NoModel(),
            use_chat_template_override=False,
        )

    def to_agent_desired_state(self) -> AgentDesiredState:
        """The stored override only reaches agents while ``use_chat_template_override`` is on."""
        return AgentDesiredState(
            chat_template_override=(
                self.chat_template_override if self.use_chat_template_override else None
            ),
            inference_parameters=self.inference_parameters,
            model=self.model,
            multimodal_projection=self.multimodal_projection,
        )
