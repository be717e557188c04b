"""Request parameters of the three inference operations (REST bodies and socket payloads)."""

from __future__ import annotations

from pydantic import Field

from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.embedding import EmbeddingInputDocument, EmbeddingNormalizationMethod
from paddler_tui.protocol.grammar import GrammarConstraint
from paddler_tui.protocol.numbers import I32
from paddler_tui.protocol.tool import TaggedTool, validate_tools
from paddler_tui.protocol.wire import WireModel

# Rust declares these fields alphabetically, so ``grammar`` goes out before ``max_tokens`` even
# though the REST examples in the docs list it last.


class ContinueFromConversationHistoryParams(WireModel):
    add_generation_prompt: bool
    conversation_history: list[ConversationMessage]
    enable_thinking: bool
    grammar: GrammarConstraint | None = None
    max_tokens: I32
    parse_tool_calls: bool = False
    tools: list[TaggedTool] = Field(default_factory=list)

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
