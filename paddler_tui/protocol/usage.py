"""Token accounting reported with the final ``Done`` of a generation."""

from __future__ import annotations

from paddler_tui.protocol.numbers import U64
from paddler_tui.protocol.wire import WireModel


class TokenUsage(WireModel):
    """All eight counters are required on the wire; :meth:`zero` is the empty count."""

    prompt_tokens: U64
    cached_prompt_tokens: U64
    input_image_tokens: U64
    input_audio_tokens: U64
    content_tokens: U64
    reasoning_tokens: U64
    tool_call_tokens: U64
    undeterminable_tokens: U64

    @classmethod
    def zero(cls) -> TokenUsage:
        return cls(
            prompt_tokens=0,
            cached_prompt_tokens=0,
            input_image_tokens=0,
            input_audio_tokens=0,
            content_tokens=0,
            reasoning_tokens=0,
            tool_call_tokens=0,
            undeterminable_tokens=0,
        )

    @property
    def completion_tokens(self) -> int:
        return (
            self.content_tokens
            + self.reasoning_tokens
            + self.tool_call_tokens
            + self.undeterminable_tokens
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class GenerationSummary(WireModel):
    usage: TokenUsage
