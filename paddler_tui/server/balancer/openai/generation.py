"""What chat completions and responses share: building the native request, reading its stream.

A request's stream, read by ``protocol.token_stream``, is reduced to four events (a piece of
text, parsed tool calls, the end with its usage, an OpenAI error); each route turns those into
its own wire shapes.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.envelope import EmbeddingResponse, ErrorDetails
from paddler_tui.protocol.generated_token import ParsedToolCall, ValidJson
from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope
from paddler_tui.protocol.requests import SamplingOverrides
from paddler_tui.protocol.token_stream import (
    AgentFailure,
    Finished,
    Refused,
    TextPiece,
    ToolCalls,
    read_message,
)
from paddler_tui.protocol.tool import FunctionDefinition, Tool, ToolParametersSchema
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.openai.errors import (
    INVALID_REQUEST,
    OpenAIError,
    from_error_envelope,
    from_token_result,
    from_unsent_response,
    invalid_request,
)
from paddler_tui.server.balancer.openai.models import JsonObject

DEFAULT_MAX_TOKENS = 2000
# Keys of a JSON Schema's top level that the native API keeps; OpenAI clients add others
# (``$schema``, ``title``, ``strict`` …), which Paddler drops too.
_SCHEMA_KEYS = ("properties", "required", "additionalProperties")


GenerationEvent = TextPiece | ToolCalls | Finished | OpenAIError


def generation_event(message: InferenceServerMessage) -> GenerationEvent | None:
    """What one balancer message means to an OpenAI client; ``None`` for what it never sees.

    Raw tool-call text is dropped: the parsed calls follow it.
    """
    if isinstance(message, ResponseEnvelope) and isinstance(message.response, EmbeddingResponse):
        return OpenAIError(
            500, "unexpected embedding result for a generation request", error_type=INVALID_REQUEST
        )
    event = read_message(message)
    if isinstance(event, TextPiece | Finished):
        return event
    if isinstance(event, ToolCalls):
        return event if event.calls else None
    if isinstance(event, AgentFailure):
        return from_token_result(event.result)
    if isinstance(event, Refused):
        reason = event.reason
        if isinstance(reason, ErrorDetails):
            return from_error_envelope(reason)
        return from_unsent_response(reason)
    return None


def was_cut_short(usage: TokenUsage, max_tokens: int) -> bool:
    """Whether generation stopped at ``max_tokens`` rather than at the end of the answer.

    The agent never counts the end-of-generation token, so reaching the budget means it cut.
    """
    return usage.completion_tokens >= max_tokens


def tool_call_arguments(call: ParsedToolCall) -> str:
    """Arguments as OpenAI carries them: a JSON string (invalid JSON passes through raw)."""
    if isinstance(call.arguments, ValidJson):
        return orjson.dumps(call.arguments.value).decode()
    return call.arguments.value


def native_role(role: str) -> str:
    """OpenAI's ``developer`` role is the ``system`` role chat templates know."""
    return "system" if role == "developer" else role


def function_call_message(call_id: str, name: str, arguments: str) -> ConversationMessage:
    """An earlier tool call, replayed as the assistant's text (the native API has no field)."""
    text = orjson.dumps({"call_id": call_id, "name": name, "arguments": arguments}).decode()
    return ConversationMessage(role="assistant", content=text)


def native_tool(name: str, description: str | None, parameters: JsonObject | None) -> Tool:
    """A function tool in the native form; raise a 400 for a schema the agent cannot take."""
    schema: ToolParametersSchema | None = None
    if parameters is not None:
        kept: dict[str, Any] = {key: parameters[key] for key in _SCHEMA_KEYS if key in parameters}
        try:
            schema = ToolParametersSchema.model_validate(
                {"type": parameters.get("type", "object"), **kept}
            )
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise invalid_request(
                f"tool {name!r}: invalid parameters ({where}: {first['msg']})", param="tools"
            ) from error
        invalid = schema.validation_error()
        if invalid is not None:
            raise invalid_request(invalid, param="tools")
    return Tool(
        function=FunctionDefinition(name=name, description=description or "", parameters=schema)
    )


def sampling_overrides(
    temperature: float | None, top_p: float | None, seed: int | None = None
) -> SamplingOverrides | None:
    if temperature is None and top_p is None and seed is None:
        return None
    return SamplingOverrides(
        # llama.cpp seeds are 32-bit; OpenAI's are any integer.
        seed=None if seed is None else seed & 0xFFFFFFFF,
        temperature=temperature,
        top_p=top_p,
    )


def thinking_enabled(effort: str | None) -> bool:
    """Thinking stays on (Paddler's default) unless the client asks for no reasoning effort."""
    return effort != "none"
