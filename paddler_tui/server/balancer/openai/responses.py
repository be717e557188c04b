"""``POST /v1/responses``: the native request it becomes, and the response and its events.

One state machine serves both modes: a stream sends its events, a plain request sends the final
response object it builds, so both always agree. Items are opened as text arrives and closed
when another kind starts; every event carries the next ``sequence_number``, without gaps.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

from paddler_tui.protocol.conversation import (
    ContentPart,
    ConversationMessage,
    ImageUrl,
    ImageUrlPart,
    TextPart,
)
from paddler_tui.protocol.grammar import JsonSchemaGrammar
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.protocol.token_stream import Finished, TextPiece
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.openai.errors import RATE_LIMIT, OpenAIError
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
    ResponsesContentPart,
    ResponsesFunctionCallItem,
    ResponsesFunctionCallOutputItem,
    ResponsesFunctionTool,
    ResponsesImagePart,
    ResponsesInputItem,
    ResponsesMessageItem,
    ResponsesRequest,
    ResponsesTextPart,
)

RESPONSES_DISABLED = "Responses are disabled while the cluster is configured for embeddings"


def responses_max_tokens(request: ResponsesRequest) -> int:
    return request.max_output_tokens or DEFAULT_MAX_TOKENS


def responses_request_params(request: ResponsesRequest) -> ContinueFromConversationHistoryParams:
    """The native request; raises a 400 :class:`OpenAIError` for a bad tool schema.

    A ``json_schema`` text format becomes a grammar; it needs ``reasoning.effort: "none"``, as
    the agent refuses a grammar while thinking.
    """
    tools = [
        native_tool(tool.name, tool.description, tool.parameters)
        for tool in request.tools or ()
        if isinstance(tool, ResponsesFunctionTool)
    ]
    text_format = request.text.format if request.text is not None else None
    grammar = None
    if text_format is not None and text_format.type == "json_schema":
        grammar = JsonSchemaGrammar(schema=orjson.dumps(text_format.schema_ or {}).decode())
    return ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=responses_conversation(request),
        enable_thinking=thinking_enabled(
            request.reasoning.effort if request.reasoning is not None else None
        ),
        grammar=grammar,
        max_tokens=responses_max_tokens(request),
        parse_tool_calls=bool(tools),
        sampling=sampling_overrides(request.temperature, request.top_p),
        tools=tools,
    )


def responses_conversation(request: ResponsesRequest) -> list[ConversationMessage]:
    messages: list[ConversationMessage] = []
    if request.instructions:
        messages.append(ConversationMessage(role="system", content=request.instructions))
    if isinstance(request.input, str):
        messages.append(ConversationMessage(role="user", content=request.input))
        return messages
    for item in request.input:
        message = _input_message(item)
        if message is not None:
            messages.append(message)
    return messages


def _input_message(item: ResponsesInputItem) -> ConversationMessage | None:
    """One input item as a conversation message; items of other types are dropped."""
    if isinstance(item, ResponsesMessageItem):
        role = native_role(item.role)
        if isinstance(item.content, str):
            return ConversationMessage(role=role, content=item.content)
        return ConversationMessage(role=role, content=_content_parts(item.content))
    if isinstance(item, ResponsesFunctionCallItem):
        return function_call_message(item.call_id, item.name, item.arguments)
    if isinstance(item, ResponsesFunctionCallOutputItem):
        if isinstance(item.output, str):
            return ConversationMessage(role="tool", content=item.output)
        text = "".join(part.text for part in item.output if isinstance(part, ResponsesTextPart))
        return ConversationMessage(role="tool", content=text)
    return None


def _content_parts(parts: list[ResponsesContentPart]) -> list[ContentPart]:
    kept: list[ContentPart] = []
    for part in parts:
        if isinstance(part, ResponsesTextPart):
            kept.append(TextPart(text=part.text))
        elif isinstance(part, ResponsesImagePart) and part.image_url is not None:
            kept.append(ImageUrlPart(image_url=ImageUrl(url=part.image_url)))
    return kept


def responses_usage(usage: TokenUsage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _function_call(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


class ResponsesOutput:
    """One response's state; :meth:`events` gives a stream's events, :meth:`answer` the object.

    A response cut by ``max_output_tokens`` ends ``incomplete`` (OpenAI's meaning) where Paddler
    says ``completed``; any failure ends it ``failed`` and nothing follows.
    """

    def __init__(
        self,
        *,
        response_id: str,
        model: str,
        created_at: int,
        instructions: str | None,
        max_tokens: int,
        temperature: float,
        top_p: float,
    ) -> None:
        self.response_id = response_id
        self.model = model
        self.created_at = created_at
        self.instructions = instructions or None
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.output: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.error: OpenAIError | None = None
        self._sequence = 0
        self._open: Literal["reasoning", "message"] | None = None
        self._open_text: list[str] = []

    @property
    def done(self) -> bool:
        """Completed, cut short or failed: nothing more will be sent."""
        return self.final is not None

    def events(self, event: GenerationEvent) -> list[dict[str, Any]]:
        """The events ``event`` causes; the first call also sends the preamble."""
        if self.done:
            return []
        events: list[dict[str, Any]] = []
        if self._sequence == 0:
            in_progress = self._response("in_progress")
            events.append(self._event("response.created", response=in_progress))
            events.append(self._event("response.in_progress", response=in_progress))
        if isinstance(event, OpenAIError):
            self.error = event
            code = "rate_limit_exceeded" if event.error_type == RATE_LIMIT else "server_error"
            self.final = self._response("failed", error={"code": code, "message": event.message})
            events.append(self._event("response.failed", response=self.final))
        elif isinstance(event, TextPiece):
            events.extend(self._text(event.text, "reasoning" if event.reasoning else "message"))
        elif isinstance(event, Finished):
            events.extend(self._finish(event.usage))
        else:
            events.extend(self._close())
            for call in event.calls:
                events.extend(self._tool_call(call.id, call.name, tool_call_arguments(call)))
        return events

    def feed(self, event: GenerationEvent) -> None:
        """Take ``event`` without streaming it (the non-streaming answer)."""
        self.events(event)

    def answer(self) -> tuple[int, dict[str, Any]]:
        """The non-streaming answer: status and body."""
        if self.error is not None:
            return self.error.status_code, self.error.body()
        if self.final is None:
            return 500, OpenAIError(500, "no response produced").body()
        return 200, self.final

    def _text(self, text: str, kind: Literal["reasoning", "message"]) -> list[dict[str, Any]]:
        events = [] if self._open == kind else [*self._close(), *self._open_item(kind)]
        self._open_text.append(text)
        index = len(self.output)
        if kind == "reasoning":
            delta = {"item_id": f"rs_{index}", "output_index": index, "content_index": 0}
            events.append(self._event("response.reasoning_text.delta", **delta, delta=text))
        else:
            delta = {"item_id": f"msg_{index}", "output_index": index, "content_index": 0}
            events.append(
                self._event("response.output_text.delta", **delta, delta=text, logprobs=[])
            )
        return events

    def _open_item(self, kind: Literal["reasoning", "message"]) -> list[dict[str, Any]]:
        self._open = kind
        index = len(self.output)
        if kind == "reasoning":
            item = {
                "type": "reasoning",
                "id": f"rs_{index}",
                "summary": [],
                "status": "in_progress",
            }
            return [self._event("response.output_item.added", output_index=index, item=item)]
        item_id = f"msg_{index}"
        item = {
            "id": item_id,
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        return [
            self._event("response.output_item.added", output_index=index, item=item),
            self._event(
                "response.content_part.added",
                item_id=item_id,
                output_index=index,
                content_index=0,
                part=_output_text(""),
            ),
        ]

    def _close(self) -> list[dict[str, Any]]:
        """Close the open reasoning or message item, if any."""
        kind, self._open = self._open, None
        if kind is None:
            return []
        text = "".join(self._open_text)
        self._open_text = []
        index = len(self.output)
        if kind == "reasoning":
            item_id = f"rs_{index}"
            item: dict[str, Any] = {
                "type": "reasoning",
                "id": item_id,
                "summary": [],
                "content": [{"type": "reasoning_text", "text": text}],
                "status": "completed",
            }
            events = [
                self._event(
                    "response.reasoning_text.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=0,
                    text=text,
                )
            ]
        else:
            item_id = f"msg_{index}"
            item = {
                "id": item_id,
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [_output_text(text)],
            }
            where = {"item_id": item_id, "output_index": index, "content_index": 0}
            events = [
                self._event("response.output_text.done", **where, text=text, logprobs=[]),
                self._event("response.content_part.done", **where, part=_output_text(text)),
            ]
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        self.output.append(item)
        return events

    def _tool_call(self, call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
        index = len(self.output)
        item_id = f"fc_{index}"
        item = _function_call(item_id, call_id, name, arguments, "completed")
        self.output.append(item)
        where = {"item_id": item_id, "output_index": index}
        return [
            self._event(
                "response.output_item.added",
                output_index=index,
                item=_function_call(item_id, call_id, name, "", "in_progress"),
            ),
            self._event("response.function_call_arguments.delta", **where, delta=arguments),
            self._event(
                "response.function_call_arguments.done", **where, name=name, arguments=arguments
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _finish(self, usage: TokenUsage) -> list[dict[str, Any]]:
        events = self._close()
        if not any(item["type"] in ("message", "function_call") for item in self.output):
            # Clients look for a message; an empty answer still gets one.
            events.extend([*self._open_item("message"), *self._close()])
        if was_cut_short(usage, self.max_tokens):
            self.final = self._response(
                "incomplete",
                incomplete={"reason": "max_output_tokens"},
                usage=responses_usage(usage),
            )
            events.append(self._event("response.incomplete", response=self.final))
        else:
            self.final = self._response("completed", usage=responses_usage(usage))
            events.append(self._event("response.completed", response=self.final))
        return events

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event

    def _response(
        self,
        status: str,
        *,
        error: dict[str, Any] | None = None,
        incomplete: dict[str, Any] | None = None,
        usage: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        response: dict[str, Any] = {
            "id": self.response_id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "model": self.model,
            "tools": [],
            # A failed response shows no output, as in Paddler.
            "output": list(self.output) if status != "failed" else [],
            "parallel_tool_calls": True,
            "metadata": {},
            "tool_choice": "auto",
            "temperature": self.temperature,
            "top_p": self.top_p,
            "text": {"format": {"type": "text"}},
        }
        if usage is not None:
            response["usage"] = usage
        return response
