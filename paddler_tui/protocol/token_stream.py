"""A request's token stream, read one balancer message at a time.

The agent writes an answer as ``GeneratedTokenResult`` variants, one per kind of text
(``generated_token.TEXT_VARIANTS``). Every reader of the balancer's stream, the TUI's chat and
the OpenAI routes alike, wants the same things from it: answer or reasoning text, raw tool-call
text, parsed tool calls, the end with its usage, the agent's report of a failure, or the
balancer refusing the request. Each reader then turns those into its own shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope, GeneratedToken
from paddler_tui.protocol.generated_token import (
    ContentToken,
    Done,
    GeneratedTokenResult,
    ParsedToolCall,
    ReasoningToken,
    ToolCallParsed,
    ToolCallToken,
    UndeterminableToken,
    is_terminal,
)
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ResponseEnvelope,
    Timeout,
    TooManyBufferedRequests,
)
from paddler_tui.protocol.usage import TokenUsage


@dataclass(frozen=True, slots=True)
class TextPiece:
    """Answer text; undeterminable text reads as content, as Paddler's clients show it."""

    text: str
    reasoning: bool


@dataclass(frozen=True, slots=True)
class ToolCallText:
    """The raw text of a tool-call section; its parsed calls follow as :class:`ToolCalls`."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCalls:
    calls: list[ParsedToolCall]


@dataclass(frozen=True, slots=True)
class Finished:
    usage: TokenUsage


@dataclass(frozen=True, slots=True)
class AgentFailure:
    """A result reporting a failure; ``ends`` when the agent sends nothing more after it."""

    result: GeneratedTokenResult
    ends: bool


RefusalReason = ErrorDetails | Timeout | TooManyBufferedRequests


@dataclass(frozen=True, slots=True)
class Refused:
    """The balancer ended the request: an error envelope, or a variant Paddler never sends."""

    reason: RefusalReason


StreamEvent = TextPiece | ToolCallText | ToolCalls | Finished | AgentFailure | Refused


def read_message(message: InferenceServerMessage) -> StreamEvent | None:
    """What one message means to a reader of generated text; None for what it never acts on.

    Notifications and embedding results are not part of a generation's stream.
    """
    if isinstance(message, ResponseEnvelope):
        response = message.response
        if isinstance(response, GeneratedToken):
            return read_result(response.value)
        if isinstance(response, Timeout | TooManyBufferedRequests):
            return Refused(response)
        return None
    if isinstance(message, ErrorEnvelope):
        return Refused(message.error)
    return None


def read_result(result: GeneratedTokenResult) -> StreamEvent:
    # Text first: nearly every message is a token.
    if isinstance(result, ContentToken | UndeterminableToken):
        return TextPiece(result.value, reasoning=False)
    if isinstance(result, ReasoningToken):
        return TextPiece(result.value, reasoning=True)
    if isinstance(result, ToolCallToken):
        return ToolCallText(result.value)
    if isinstance(result, Done):
        return Finished(result.usage)
    if isinstance(result, ToolCallParsed):
        return ToolCalls(result.value)
    return AgentFailure(result, ends=is_terminal(result))
