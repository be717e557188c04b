"""Reading the balancer's stream, and the pieces both generation routes share (no sockets)."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from paddler_tui.protocol.embedding import EmbeddingDone
from paddler_tui.protocol.generated_token import (
    ContentToken,
    InvalidJson,
    ParsedToolCall,
    ReasoningToken,
    ToolCallParsed,
    ToolCallToken,
    UndeterminableToken,
    ValidJson,
)
from paddler_tui.protocol.inference_socket import (
    ServerNotificationEnvelope,
    TokenGenerationDisabledNotification,
)
from paddler_tui.protocol.requests import SamplingOverrides
from paddler_tui.protocol.token_stream import Finished, TextPiece, ToolCalls
from paddler_tui.server.balancer.openai.errors import OpenAIError
from paddler_tui.server.balancer.openai.generation import (
    generation_event,
    native_tool,
    sampling_overrides,
    thinking_enabled,
    tool_call_arguments,
    was_cut_short,
)
from tests.openai.messages import done, embedding, token, usage


def test_token_kinds() -> None:
    assert generation_event(token(ContentToken(value="a"))) == TextPiece("a", reasoning=False)
    assert generation_event(token(UndeterminableToken(value="b"))) == TextPiece(
        "b", reasoning=False
    )
    assert generation_event(token(ReasoningToken(value="c"))) == TextPiece("c", reasoning=True)


def test_raw_tool_call_text_and_notifications_are_not_shown() -> None:
    assert generation_event(token(ToolCallToken(value="<tool_call>"))) is None
    assert generation_event(token(ToolCallParsed(value=[]))) is None
    notification = ServerNotificationEnvelope(value=TokenGenerationDisabledNotification())
    assert generation_event(notification) is None


def test_tool_calls_and_done() -> None:
    call = ParsedToolCall(id="call_0", name="f", arguments=ValidJson(value={"a": 1}))
    assert generation_event(token(ToolCallParsed(value=[call]))) == ToolCalls([call])
    assert generation_event(done(prompt=3, content=2)) == Finished(usage(prompt=3, content=2))


def test_an_embedding_result_on_a_token_stream_is_an_error() -> None:
    event = generation_event(embedding(EmbeddingDone()))
    assert isinstance(event, OpenAIError)
    assert event.error_type == "invalid_request_error"


def test_tool_call_arguments_are_json_strings_or_passed_through() -> None:
    valid = ParsedToolCall(id="1", name="f", arguments=ValidJson(value={"location": "NYC"}))
    assert tool_call_arguments(valid) == '{"location":"NYC"}'
    invalid = ParsedToolCall(id="1", name="f", arguments=InvalidJson(value="{location: NYC"))
    assert tool_call_arguments(invalid) == "{location: NYC"


def test_cut_short_means_the_budget_was_spent() -> None:
    assert was_cut_short(usage(content=5), 5)
    assert was_cut_short(usage(content=3, reasoning=2), 5)
    assert not was_cut_short(usage(content=4), 5)


def test_opencode_style_tool_schema_keeps_what_the_agent_takes() -> None:
    tool = native_tool(
        "read",
        None,
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"path": {"type": "string", "description": "file"}},
            "required": ["path"],
            "additionalProperties": False,
            "title": "read",
        },
    )
    assert tool.function.description == ""
    parameters = tool.function.parameters
    assert parameters is not None
    assert parameters.model_dump(mode="json") == {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "file"}},
        "required": ["path"],
        "additionalProperties": False,
    }


def test_schema_type_defaults_to_object_and_parameters_may_be_absent() -> None:
    parameters = native_tool("f", "d", {"properties": {}}).function.parameters
    assert parameters is not None and parameters.type == "object"
    assert native_tool("f", "d", None).function.parameters is None


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"type": "object", "properties": {"a": {}}, "required": ["b"]},
            "Required field 'b' not found in properties",
        ),
        ({"type": "object", "properties": ["a"]}, "tool 'f': invalid parameters (properties"),
    ],
)
def test_bad_tool_schemas_are_invalid_requests(
    parameters: dict[str, JsonValue], message: str
) -> None:
    with pytest.raises(OpenAIError) as raised:
        native_tool("f", "d", parameters)
    assert raised.value.status_code == 400
    assert raised.value.error_type == "invalid_request_error"
    assert raised.value.message.startswith(message)


def test_sampling_overrides_only_when_asked() -> None:
    assert sampling_overrides(None, None, None) is None
    assert sampling_overrides(0.5, None) == SamplingOverrides(temperature=0.5)
    # OpenAI seeds are any integer; llama.cpp takes 32 bits.
    assert sampling_overrides(None, None, -1) == SamplingOverrides(seed=0xFFFFFFFF)
    assert sampling_overrides(None, 0.9, 2**40 + 7) == SamplingOverrides(seed=7, top_p=0.9)


def test_thinking_is_on_unless_effort_is_none() -> None:
    assert thinking_enabled(None)
    assert thinking_enabled("low")
    assert not thinking_enabled("none")
