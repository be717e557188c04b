"""Request parameters of the three inference operations (REST bodies and socket payloads)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.embedding import EmbeddingInputDocument, EmbeddingNormalizationMethod
from paddler_tui.protocol.grammar import GrammarConstraint
from paddler_tui.protocol.numbers import F32, I32, U32
from paddler_tui.protocol.tool import TaggedTool, validate_tools
from paddler_tui.protocol.wire import WireModel

# Rust declares these fields alphabetically, so ``grammar`` goes out before ``max_tokens`` even
# though the REST examples in the docs list it last.


class SamplingOverrides(WireModel):
    """Per-request sampling (paddler-tui extension); ``None`` keeps the cluster's parameter.

    The OpenAI service fills it from ``temperature``, ``top_p`` and ``seed``. Only paddler-tui
    agents understand it: a Paddler agent denies unknown fields and would drop the request.
    """

    seed: U32 | None = None
    temperature: F32 | None = None
    top_p: F32 | None = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ContinueFromConversationHistoryParams(WireModel):
    add_generation_prompt: bool
    conversation_history: list[ConversationMessage]
    enable_thinking: bool
    grammar: GrammarConstraint | None = None
    max_tokens: I32
    parse_tool_calls: bool = False
    sampling: SamplingOverrides | None = None
    tools: list[TaggedTool] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_default_sampling(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Without overrides the message stays byte-identical to Paddler's.
        data: dict[str, Any] = handler(self)
        if data.get("sampling") is None:
            data.pop("sampling", None)
        return data

    def validation_error(self) -> str | None:
        """The tool-schema failure Paddler reports (without its HTTP prefix), or ``None``."""
        return validate_tools(self.tools)


class ContinueFromRawPromptParams(WireModel):
    grammar: GrammarConstraint | None = None
    max_tokens: I32
    raw_prompt: str


class GenerateEmbeddingBatchParams(WireModel):
    input_batch: list[EmbeddingInputDocument]
    normalization_method: EmbeddingNormalizationMethod
