"""``POST /v1/chat/completions``: the native request it becomes, and the chunks or answer."""

from __future__ import annotations

from typing import Any

from paddler_tui.protocol.conversation import (
    ContentPart,
    ConversationMessage,
    ImageUrl,
    ImageUrlPart,
    MessageContent,
    TextPart,
)
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.token_stream import Finished, TextPiece, ToolCalls
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.openai.errors import OpenAIError
from paddler_tui.server.balancer.openai.generation import (
    DEFAULT_MAX_TOKENS,
    GenerationEvent,
    function_call_message,
    native_role,
    native_tool,
    sampling_overrides,
    thinking_enabled,
    tool_call_arguments,
    was_cut_short,
)
from paddler_tui.server.balancer.openai.models import (
    ChatCompletionRequest,
    ChatFunctionTool,
    ChatImagePart,
    ChatMessage,
    ChatTextPart,
)

CHAT_DISABLED = "Chat completions are disabled while the cluster is configured for embeddings"


def chat_max_tokens(request: ChatCompletionRequest) -> int:
    return request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS


def chat_request_params(request: ChatCompletionRequest) -> ContinueFromConversationHistoryParams:
    """The native request; raises a 400 :class:`OpenAIError` for a bad tool schema."""
    tools = [
        native_tool(tool.function.name, tool.function.description, tool.function.parameters)
        for tool in request.tools or ()
        if isinstance(tool, ChatFunctionTool)
    ]
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=[
            converted for message in request.messages for converted in _conversation(message)
        ],
        enable_thinking=thinking_enabled(request.reasoning_effort),
        max_tokens=chat_max_tokens(request),
        parse_tool_calls=bool(tools),
        sampling=sampling_overrides(request.temperature, request.top_p, request.seed),
        tools=tools,
    )


def _conversation(message: ChatMessage) -> list[ConversationMessage]:
    """The message, then each tool call it made as its own assistant turn."""
    content: MessageContent
    if message.content is None or isinstance(message.content, str):
        content = message.content or ""
    else:
        content = [_content_part(part) for part in message.content]
    converted = [
        function_call_message(call.id, call.function.name, call.function.arguments)
        for call in message.tool_calls
    ]
    if content or not converted:
        converted.insert(0, ConversationMessage(role=native_role(message.role), content=content))
    return converted


def _content_part(part: ChatTextPart | ChatImagePart) -> ContentPart:
    if isinstance(part, ChatTextPart):
        return TextPart(text=part.text)
    return ImageUrlPart(image_url=ImageUrl(url=part.image_url.url))


def chat_usage(usage: TokenUsage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_prompt_tokens,
            "audio_tokens": usage.input_audio_tokens,
        },
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


class ChatCompletion:
    """One completion's state: the chunks of a stream as events come, or the whole answer.

    Reasoning text is counted in the usage but not shown, as in Paddler. ``finish_reason`` is
    ``tool_calls`` after tool calls, ``length`` when ``max_tokens`` cut the answer, else ``stop``.
    """

    def __init__(
        self, *, request_id: str, model: str, created: int, max_tokens: int, include_usage: bool
    ) -> None:
        self.request_id = request_id
        self.model = model
        self.created = created
        self.max_tokens = max_tokens
        self.include_usage = include_usage
        self.fingerprint = new_id()
        self.content: list[str] = []
        self.tool_calls: list[dict[str, Any]] = []
        self.usage: TokenUsage | None = None
        self.error: OpenAIError | None = None

    @property
    def done(self) -> bool:
        """A failed answer needs nothing more (a stream still relays what follows)."""
        return self.error is not None

    @property
    def finish_reason(self) -> str:
        if self.tool_calls:
            return "tool_calls"
        if self.usage is not None and was_cut_short(self.usage, self.max_tokens):
            return "length"
        return "stop"

    def chunks(self, event: GenerationEvent) -> list[dict[str, Any]]:
        """What a stream sends for ``event``: chunks, or an error body (the stream goes on)."""
        tool_calls_before = len(self.tool_calls)
        self.feed(event)
        if isinstance(event, OpenAIError):
            return [event.body()]
        if isinstance(event, TextPiece):
            if event.reasoning:
                return []
            return [self._chunk({"role": "assistant", "content": event.text})]
        if isinstance(event, ToolCalls):
            calls = [
                {"index": index, **call}
                for index, call in enumerate(self.tool_calls)
                if index >= tool_calls_before
            ]
            return [self._chunk({"role": "assistant", "tool_calls": calls})]
        chunks = [self._chunk({}, finish_reason=self.finish_reason)]
        if self.include_usage:
            chunks.append(self._envelope([], usage=chat_usage(event.usage)))
        return chunks

    def feed(self, event: GenerationEvent) -> None:
        if isinstance(event, OpenAIError):
            self.error = self.error or event
        elif isinstance(event, TextPiece):
            if not event.reasoning:
                self.content.append(event.text)
        elif isinstance(event, ToolCalls):
            self.tool_calls.extend(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": tool_call_arguments(call)},
                }
                for call in event.calls
            )
        elif isinstance(event, Finished):
            self.usage = event.usage

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The non-streaming answer: status and body (any error fails the whole answer)."""
        if self.error is not None:
            return self.error.status_code, self.error.body()
        if self.usage is None:
            return 500, OpenAIError(500, "no completion produced").body()
        content = "".join(self.content)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content or (None if self.tool_calls else ""),
            "refusal": None,
            "annotations": [],
        }
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return 200, {
            "id": self.request_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason,
                }
            ],
            "usage": chat_usage(self.usage),
            "service_tier": "default",
        }

    def _chunk(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._envelope([choice])

    def _envelope(
        self, choices: list[dict[str, Any]], *, usage: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk
