"""A request's classified tokens turned into GeneratedTokenResult messages and exact usage."""

from __future__ import annotations

from paddler_tui.protocol.generated_token import (
    ContentToken,
    Done,
    ParsedToolCall,
    ReasoningToken,
    ToolCallParsed,
    ToolCallToken,
    ToolCallValidationFailed,
    UndeterminableToken,
    UnrecognizedToolCallFormat,
    ValidJson,
)
from paddler_tui.protocol.tool import FunctionDefinition, Tool
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.agent.output.generation_output import GenerationOutput
from paddler_tui.server.agent.output.token_classifier import Classified, Text, ToolCallSection
from paddler_tui.server.agent.output.tool_call_validation import ToolCallValidator

VALIDATOR = ToolCallValidator([Tool(function=FunctionDefinition(name="f", description="F"))])


def test_texts_become_token_messages_and_every_kind_is_counted() -> None:
    output = GenerationOutput(None)
    results = output.token(Classified("reasoning", (Text("reasoning", "hm"),)))
    results += output.token(Classified("undeterminable", ()))
    results += output.token(Classified("content", (Text("content", "<b"),)))
    results += output.token(Classified("tool_call", (Text("tool_call", "{}"),)))
    results += output.token(Classified("tool_call", (ToolCallSection("<tool_call>{}"),)))
    results += output.finish(
        [Text("undeterminable", "<th")], prompt_tokens=7, cached_prompt_tokens=3
    )
    usage = TokenUsage.zero().model_copy(
        update={
            "prompt_tokens": 7,
            "cached_prompt_tokens": 3,
            "content_tokens": 1,
            "reasoning_tokens": 1,
            "tool_call_tokens": 2,
            "undeterminable_tokens": 1,
        }
    )
    # Without a validator (parse_tool_calls off) sections are not parsed.
    assert results == [
        ReasoningToken(value="hm"),
        ContentToken(value="<b"),
        ToolCallToken(value="{}"),
        UndeterminableToken(value="<th"),
        Done(usage=usage),
    ]


def test_sections_are_parsed_validated_and_numbered() -> None:
    output = GenerationOutput(VALIDATOR)
    first = ToolCallSection('<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>')
    second = ToolCallSection('<tool_call>{"name": "f"}</tool_call>')
    results = output.token(Classified("tool_call", (first,)))
    results += output.token(Classified("tool_call", (second,)))
    results += output.token(Classified("tool_call", (ToolCallSection('{"name": "g"}'),)))
    results += output.token(Classified("tool_call", (ToolCallSection("<tool_call>?"),)))
    assert results == [
        ToolCallParsed(
            value=[ParsedToolCall(id="call_0", name="f", arguments=ValidJson(value={"a": 1}))]
        ),
        ToolCallParsed(
            value=[ParsedToolCall(id="call_1", name="f", arguments=ValidJson(value={}))]
        ),
        ToolCallValidationFailed(value=['unknown tool name "g"']),
        UnrecognizedToolCallFormat(
            text="<tool_call>?",
            ffi_error_message='expected a JSON object with "name" and "arguments"',
        ),
    ]
