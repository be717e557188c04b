"""Tool-call sections parsed in every supported format, then validated against tool schemas."""

from __future__ import annotations

import pytest
from pydantic import JsonValue

from paddler_tui.protocol.generated_token import InvalidJson, ValidJson
from paddler_tui.protocol.tool import FunctionDefinition, Tool, ToolParametersSchema
from paddler_tui.server.agent.output.tool_call_parser import (
    RawToolCall,
    UnrecognizedToolCallError,
    parse_tool_call_section,
)
from paddler_tui.server.agent.output.tool_call_validation import (
    ToolCallValidator,
    ToolSchemaInvalidError,
)

PARIS = ValidJson(value={"location": "Paris"})


def weather_tool(location_type: JsonValue = "string") -> Tool:
    return Tool(
        function=FunctionDefinition(
            name="get_weather",
            description="Weather of a city",
            parameters=ToolParametersSchema(
                type="object",
                properties={"location": {"type": location_type}},
                required=["location"],
                additionalProperties=False,
            ),
        )
    )


FREEFORM = Tool(function=FunctionDefinition(name="freeform", description="Anything"))


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n'
            "</tool_call>",
            [RawToolCall("get_weather", PARIS)],
        ),
        (  # arguments as a JSON string, as some models write them
            '<tool_call>{"name": "get_weather", "arguments": "{\\"location\\": \\"Paris\\"}"}',
            [RawToolCall("get_weather", PARIS)],
        ),
        (
            "<tool_call>\n<function=get_weather>\n<parameter=location>\nParis\n</parameter>\n"
            "<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
            [RawToolCall("get_weather", ValidJson(value={"location": "Paris", "days": 3}))],
        ),
        (
            '<|python_tag|>{"name": "get_weather", "parameters": {"location": "Paris"}}',
            [RawToolCall("get_weather", PARIS)],
        ),
        (
            '{"name": "a", "parameters": {}}; {"name": "b"}',
            [RawToolCall("a", ValidJson(value={})), RawToolCall("b", ValidJson(value={}))],
        ),
        (
            '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}}]',
            [RawToolCall("get_weather", PARIS)],
        ),
        (
            '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris"}[TOOL_CALLS]f[ARGS]{oops',
            [RawToolCall("get_weather", PARIS), RawToolCall("f", InvalidJson(value="{oops"))],
        ),
        (  # cut off by max_tokens: the name survives, the arguments are kept raw
            '<tool_call>{"name": "get_weather", "arguments": {"location": "Par',
            [RawToolCall("get_weather", InvalidJson(value='{"location": "Par'))],
        ),
        (
            '<tool_call>{"name": "get_weather", "arguments": {location: Paris}}</tool_call>',
            [RawToolCall("get_weather", InvalidJson(value="{location: Paris}"))],
        ),
    ],
)
def test_parses_each_format(section: str, expected: list[RawToolCall]) -> None:
    assert parse_tool_call_section(section) == expected


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("<tool_call>hello</tool_call>", "expected a JSON object"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'string "name"'),
        ("<tool_call>[]</tool_call>", "holds no call"),
        ("<tool_call><function=>x</function></tool_call>", "<function=name>"),
        ("[TOOL_CALLS]get_weather", "[ARGS]"),
        ("Sure, here you go", "no known tool-call format"),
    ],
)
def test_unrecognized_sections(section: str, message: str) -> None:
    with pytest.raises(UnrecognizedToolCallError, match=message.replace("[", r"\[")):
        parse_tool_call_section(section)


def test_valid_calls_pass() -> None:
    validator = ToolCallValidator([weather_tool(), FREEFORM])
    calls = [
        RawToolCall("get_weather", PARIS),
        RawToolCall("freeform", ValidJson(value=[1, 2])),
        RawToolCall("get_weather", InvalidJson(value="{broken")),
    ]
    assert validator.errors(calls) == []


def test_unknown_names_and_schema_violations_are_reported_per_call() -> None:
    validator = ToolCallValidator([weather_tool("integer")])
    calls = [
        RawToolCall("get_weather", PARIS),
        RawToolCall("set_alarm", ValidJson(value={})),
        RawToolCall("get_weather", ValidJson(value={})),
    ]
    assert validator.errors(calls) == [
        "arguments for tool \"get_weather\" failed schema check: 'Paris' is not of type 'integer'",
        'unknown tool name "set_alarm"',
        "arguments for tool \"get_weather\" failed schema check: 'location' is a required property",
    ]


def test_a_schema_that_does_not_compile_names_the_tool() -> None:
    with pytest.raises(ToolSchemaInvalidError) as raised:
        ToolCallValidator([FREEFORM, weather_tool(123)])
    message = str(raised.value)
    assert message.startswith('tool "get_weather" parameters are not a valid JSON Schema: ')
    assert "123" in message
