"""Request bodies of the OpenAI-compatible service.

OpenAI clients send many fields this service has no use for (``n``, ``stop``, ``store``,
``tool_choice``, ``strict`` …), so every model ignores unknown keys, as Paddler's
OpenAI types do. Lists whose members come in kinds we do not serve (tools that are not
functions, input items and content parts of other types) keep those members as plain JSON for
the converters to skip.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, GetJsonSchemaHandler, JsonValue, Tag
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from paddler_tui.protocol.wire import LenientWireModel

# Token limits travel to agents as Paddler's i32 `max_tokens`, so larger ones are a 400 here.
PositiveInt = Annotated[int, Field(ge=1, le=2**31 - 1)]
Temperature = Annotated[float, Field(ge=0.0, le=2.0)]
TopP = Annotated[float, Field(ge=0.0, le=1.0)]
JsonObject = dict[str, JsonValue]


def _kind_among(*kinds: str, untyped: str | None = None) -> Discriminator:
    """A discriminator that picks a member by its ``type`` key, or ``"other"``.

    ``untyped`` names the member for an object without a ``type`` key.
    """

    def kind(value: Any) -> str:
        if not isinstance(value, dict):
            return "other"
        tag = value.get("type", untyped)
        return tag if tag in kinds else "other"

    return Discriminator(kind)


@dataclass(frozen=True)
class _AnyMember:
    """Documents an open union as ``anyOf``: its ``other`` member takes any JSON, so a known
    kind matches two members and pydantic's ``oneOf`` would call every valid body invalid."""

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        if "oneOf" in schema:
            schema["anyOf"] = schema.pop("oneOf")
        return schema


OPEN_UNION = _AnyMember()


# Shared.


class FunctionDefinition(LenientWireModel):
    name: str
    description: str | None = None
    parameters: JsonObject | None = None


class SamplingFields(LenientWireModel):
    """Sampling fields both generation routes honour per request (a paddler-tui extension)."""

    temperature: Temperature | None = None
    top_p: TopP | None = None


class AffinityFields(LenientWireModel):
    """What groups requests for prompt caching: prefix routing keeps requests with different
    keys apart (``user`` is what OpenAI's ``prompt_cache_key`` replaced)."""

    prompt_cache_key: str | None = None
    user: str | None = None

    @property
    def affinity_key(self) -> str | None:
        return self.prompt_cache_key if self.prompt_cache_key is not None else self.user


# POST /v1/chat/completions.


class ChatTextPart(LenientWireModel):
    type: Literal["text"]
    text: str


class ChatImageUrl(LenientWireModel):
    url: str


class ChatImagePart(LenientWireModel):
    type: Literal["image_url"]
    image_url: ChatImageUrl


# Other part types (audio, files) cannot be served; they fail validation, as in Paddler.
ChatContentPart = Annotated[ChatTextPart | ChatImagePart, Field(discriminator="type")]


class ChatToolCallFunction(LenientWireModel):
    name: str
    arguments: str


class ChatToolCall(LenientWireModel):
    id: str
    function: ChatToolCallFunction


class ChatMessage(LenientWireModel):
    role: str
    # ``None`` is how an assistant turn that only called tools arrives.
    content: str | list[ChatContentPart] | None = None
    tool_calls: list[ChatToolCall] = Field(default_factory=list)


class ChatFunctionTool(LenientWireModel):
    type: Literal["function"]
    function: FunctionDefinition


ChatTool = Annotated[
    Annotated[ChatFunctionTool, Tag("function")] | Annotated[JsonValue, Tag("other")],
    _kind_among("function"),
    OPEN_UNION,
]


class StreamOptions(LenientWireModel):
    include_usage: bool | None = None


class ChatCompletionRequest(SamplingFields, AffinityFields):
    model: str
    messages: list[ChatMessage]
    max_completion_tokens: PositiveInt | None = None
    # Deprecated by OpenAI in favour of ``max_completion_tokens`` but still sent by many clients.
    max_tokens: PositiveInt | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[ChatTool] | None = None
    reasoning_effort: str | None = None
    seed: int | None = None


# POST /v1/responses.


class ResponsesTextPart(LenientWireModel):
    # Earlier assistant output comes back as ``output_text``; it is text all the same.
    type: Literal["input_text", "output_text"]
    text: str


class ResponsesImagePart(LenientWireModel):
    type: Literal["input_image"]
    image_url: str | None = None


ResponsesContentPart = Annotated[
    Annotated[ResponsesTextPart, Tag("input_text")]
    | Annotated[ResponsesTextPart, Tag("output_text")]
    | Annotated[ResponsesImagePart, Tag("input_image")]
    | Annotated[JsonValue, Tag("other")],
    _kind_among("input_text", "output_text", "input_image"),
    OPEN_UNION,
]


class ResponsesMessageItem(LenientWireModel):
    type: Literal["message"] = "message"
    role: str
    content: str | list[ResponsesContentPart]


class ResponsesFunctionCallItem(LenientWireModel):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str


class ResponsesFunctionCallOutputItem(LenientWireModel):
    type: Literal["function_call_output"]
    output: str | list[ResponsesContentPart]


ResponsesInputItem = Annotated[
    Annotated[ResponsesMessageItem, Tag("message")]
    | Annotated[ResponsesFunctionCallItem, Tag("function_call")]
    | Annotated[ResponsesFunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[JsonValue, Tag("other")],
    _kind_among("message", "function_call", "function_call_output", untyped="message"),
    OPEN_UNION,
]


class ResponsesFunctionTool(FunctionDefinition):
    type: Literal["function"]


ResponsesTool = Annotated[
    Annotated[ResponsesFunctionTool, Tag("function")] | Annotated[JsonValue, Tag("other")],
    _kind_among("function"),
    OPEN_UNION,
]


class ResponsesTextFormat(LenientWireModel):
    type: str
    schema_: JsonObject | None = Field(default=None, alias="schema")


class ResponsesText(LenientWireModel):
    format: ResponsesTextFormat | None = None


class ResponsesReasoning(LenientWireModel):
    effort: str | None = None


class ResponsesRequest(SamplingFields, AffinityFields):
    model: str
    input: str | list[ResponsesInputItem] = Field(default_factory=list)
    instructions: str | None = None
    max_output_tokens: PositiveInt | None = None
    stream: bool | None = None
    tools: list[ResponsesTool] | None = None
    text: ResponsesText | None = None
    reasoning: ResponsesReasoning | None = None


# POST /v1/embeddings.


class EmbeddingsRequest(LenientWireModel):
    model: str
    # Token-array inputs need the model's tokenizer, which the balancer does not have.
    input: str | list[str]
    encoding_format: Literal["float", "base64"] | None = None
