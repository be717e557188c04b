"""``GeneratedTokenResult``: one item of a token generation stream, and ``ParsedToolCall``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import JsonValue

from paddler_tui.protocol.numbers import I32, USize
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.protocol.wire import ExternallyTagged, NewtypeVariant, StructVariant, WireModel


class ValidJson(NewtypeVariant):
    value: JsonValue


class InvalidJson(NewtypeVariant):
    value: str


ToolCallArguments = Annotated[ValidJson | InvalidJson, ExternallyTagged()]


class ParsedToolCall(WireModel):
    id: str
    name: str
    arguments: ToolCallArguments


class ChatTemplateError(NewtypeVariant):
    value: str


class ContentToken(NewtypeVariant):
    value: str


class DetokenizationFailed(NewtypeVariant):
    value: str


class Done(StructVariant):
    # Rust's payload is ``GenerationSummary``; a struct variant has the same JSON shape.
    usage: TokenUsage


class GrammarIncompatibleWithThinking(NewtypeVariant):
    value: str


class GrammarInitializationFailed(NewtypeVariant):
    value: str


class GrammarRejectedModelOutput(NewtypeVariant):
    value: str


class GrammarSyntaxError(NewtypeVariant):
    value: str


class ImageDecodingFailed(NewtypeVariant):
    value: str


class ImageExceedsBatchSize(StructVariant):
    image_tokens: USize
    n_batch: I32


class MultimodalNotSupported(NewtypeVariant):
    value: str


class ReasoningToken(NewtypeVariant):
    value: str


class SamplerError(NewtypeVariant):
    value: str


class TokenGenerationDisabled(NewtypeVariant):
    value: str


class ToolCallParseFailed(NewtypeVariant):
    value: str


class ToolCallParsed(NewtypeVariant):
    value: list[ParsedToolCall]


class ToolCallToken(NewtypeVariant):
    value: str


class ToolCallValidationFailed(NewtypeVariant):
    value: list[str]


class ToolSchemaInvalid(NewtypeVariant):
    value: str


class UndeterminableToken(NewtypeVariant):
    value: str


class UnrecognizedToolCallFormat(StructVariant):
    text: str
    ffi_error_message: str


GeneratedTokenResult = Annotated[
    ChatTemplateError
    | ContentToken
    | DetokenizationFailed
    | Done
    | GrammarIncompatibleWithThinking
    | GrammarInitializationFailed
    | GrammarRejectedModelOutput
    | GrammarSyntaxError
    | ImageDecodingFailed
    | ImageExceedsBatchSize
    | MultimodalNotSupported
    | ReasoningToken
    | SamplerError
    | TokenGenerationDisabled
    | ToolCallParseFailed
    | ToolCallParsed
    | ToolCallToken
    | ToolCallValidationFailed
    | ToolSchemaInvalid
    | UndeterminableToken
    | UnrecognizedToolCallFormat,
    ExternallyTagged(),
]

# Variants after which the agent sends nothing more for the request.
TERMINAL_VARIANTS: tuple[type[NewtypeVariant | StructVariant], ...] = (
    ChatTemplateError,
    DetokenizationFailed,
    Done,
    GrammarIncompatibleWithThinking,
    GrammarInitializationFailed,
    GrammarRejectedModelOutput,
    GrammarSyntaxError,
    ImageDecodingFailed,
    ImageExceedsBatchSize,
    MultimodalNotSupported,
    SamplerError,
    TokenGenerationDisabled,
    ToolSchemaInvalid,
)

TokenVariant = ContentToken | ReasoningToken | ToolCallToken | UndeterminableToken
TokenKind = Literal["content", "reasoning", "tool_call", "undeterminable"]
# How the agent writes each kind of generated text, and how readers tell the kind back.
TEXT_VARIANTS: dict[TokenKind, type[TokenVariant]] = {
    "content": ContentToken,
    "reasoning": ReasoningToken,
    "tool_call": ToolCallToken,
    "undeterminable": UndeterminableToken,
}
TOKEN_VARIANTS: tuple[type[TokenVariant], ...] = tuple(TEXT_VARIANTS.values())


def is_terminal(result: GeneratedTokenResult) -> bool:
    return isinstance(result, TERMINAL_VARIANTS)


def token_text(result: GeneratedTokenResult) -> str | None:
    """The text of a token variant (content, reasoning, tool call, undeterminable), else None."""
    if isinstance(result, TOKEN_VARIANTS):
        return result.value
    return None
