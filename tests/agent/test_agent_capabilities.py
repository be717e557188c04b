"""Grammars, thinking, tool calls and the prompt cache through a real agent process.

One agent serves the whole module; each test applies the state it needs (template overrides
apply in place, without a reload).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import jsonschema
import pytest
import pytest_asyncio
from pydantic import JsonValue

from paddler_tui.protocol.embedding import L2, EmbeddingsDisabled
from paddler_tui.protocol.generated_token import (
    ContentToken,
    Done,
    GeneratedTokenResult,
    GrammarInitializationFailed,
    GrammarSyntaxError,
    ReasoningToken,
    SamplerError,
    ToolCallParsed,
    ToolCallToken,
    ToolCallValidationFailed,
    ToolSchemaInvalid,
    UndeterminableToken,
    UnrecognizedToolCallFormat,
    ValidJson,
    token_text,
)
from paddler_tui.protocol.grammar import GbnfGrammar, JsonSchemaGrammar
from paddler_tui.protocol.tool import FunctionDefinition, Tool, ToolParametersSchema
from paddler_tui.protocol.usage import TokenUsage
from tests.agent.agent_session import (
    AgentSession,
    agent_session,
    conversation,
    raw_prompt,
    text_of,
)
from tests.agent.test_grammar_guard import nested

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{% endfor %}"
)
# Qwen 3 style: thinking on leaves the think block open, thinking off closes it empty.
THINKING = CHATML + (
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if enable_thinking %}{{ '<think>\\n' }}{% else %}{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{% endif %}{% endif %}"
)
# A model that always starts thinking, whatever the request says.
ALWAYS_THINKING = CHATML + (
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n<think>\\n' }}{% endif %}"
)
TOOLS = (
    '{{ \'<|im_start|>system\\nCall a tool as <tool_call>{"name": ..., "arguments": ...}'
    "</tool_call>. Tools: ' + (tools | tojson) + '<|im_end|>\\n' }}"
    + CHATML
    + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
MARKERS = ("<think>", "</think>", "<tool_call>", "</tool_call>")
FORCED_THOUGHT = GbnfGrammar(
    grammar='root ::= "I add two and two." "</think>" "The answer is 4."', root="root"
)


def weather_tool(location_type: JsonValue = "string") -> Tool:
    return Tool(
        function=FunctionDefinition(
            name="get_weather",
            description="The weather in a city",
            parameters=ToolParametersSchema(
                type="object",
                properties={"location": {"type": location_type}},
                required=["location"],
            ),
        )
    )


def tool_call_grammar(name: str = "get_weather", body: str | None = None) -> GbnfGrammar:
    arguments = '"{\\"location\\": \\"" [A-Z] [a-z]+ "\\"}"'
    payload = body or f'"{{\\"name\\": \\"{name}\\", \\"arguments\\": " {arguments} "}}"'
    return GbnfGrammar(grammar=f'root ::= "<tool_call>" {payload} "</tool_call>"', root="root")


def usage_of(results: list[GeneratedTokenResult]) -> TokenUsage:
    done = results[-1]
    assert isinstance(done, Done), done
    return done.usage


def no_markers(results: list[GeneratedTokenResult]) -> None:
    for result in results:
        text = token_text(result) or ""
        assert not any(marker in text for marker in MARKERS), result


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AgentSession]:
    tmp: Path = tmp_path_factory.mktemp("agent")
    # The slots' own prompt cache only: the prompt cache tests below replay a conversation
    # after other prompts took every slot, to decode it whole (the RAM cache would restore it;
    # that is tested in test_engine_prompt_cache and test_agent_in_process).
    async with agent_session(tmp, "--prompt-cache-ram", "0") as running:
        yield running


# Grammars.


async def test_a_gbnf_grammar_constrains_raw_and_conversation_output(
    session: AgentSession,
) -> None:
    await session.apply()
    grammar = GbnfGrammar(grammar='root ::= "yes" | "no"', root="root")
    question = "Is the sky blue? Answer yes or no."
    for request in (
        raw_prompt(question, 20, grammar=grammar),
        conversation(question, max_tokens=20, grammar=grammar),
    ):
        results = await session.generate(request)
        assert text_of(results, ContentToken) in {"yes", "no"}
        assert isinstance(results[-1], Done)


async def test_a_json_schema_grammar_yields_json_that_validates(session: AgentSession) -> None:
    await session.apply()
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    grammar = JsonSchemaGrammar(schema=json.dumps(schema))
    results = await session.generate(
        conversation("What is the capital of France?", max_tokens=60, grammar=grammar)
    )
    usage_of(results)
    jsonschema.validate(json.loads(text_of(results, ContentToken)), schema)


async def test_broken_grammars_end_the_request_and_the_agent_keeps_serving(
    session: AgentSession,
) -> None:
    await session.apply()
    cases = [
        (GbnfGrammar(grammar='root ::= "yes', root="root"), GrammarInitializationFailed),
        (GbnfGrammar(grammar=nested(20_000), root="root"), GrammarInitializationFailed),
        (JsonSchemaGrammar(schema="{not json"), GrammarSyntaxError),
    ]
    for grammar, expected in cases:
        results = await session.generate(raw_prompt("Hi", 10, grammar=grammar))
        assert len(results) == 1
        assert isinstance(results[0], expected)
        assert "grammar" in results[0].value
    assert isinstance(results[0], GrammarSyntaxError)
    assert results[0].value.startswith("Failed to create grammar sampler: JSONDecodeError")
    # A grammar that leaves no token possible used to abort llama.cpp, and the agent with it.
    empty_language = GbnfGrammar(grammar=r"root ::= [^\x00-\U0010FFFF]", root="root")
    results = await session.generate(raw_prompt("Hi", 10, grammar=empty_language))
    assert results == [SamplerError(value="all token candidates were eliminated during sampling")]
    assert isinstance((await session.generate(raw_prompt("Hello", 3)))[-1], Done)
    assert session.process is not None
    assert session.process.running()
    await session.idle()


# Thinking.


async def test_thinking_on_streams_reasoning_and_never_a_marker(session: AgentSession) -> None:
    await session.apply(template=THINKING)
    results = await session.generate(
        conversation("What is 2+2?", max_tokens=40, enable_thinking=True)
    )
    usage = usage_of(results)
    assert text_of(results, ReasoningToken)
    # SmolLM2 never closes the block the template opened: every token is reasoning.
    assert usage.reasoning_tokens == usage.completion_tokens > 0
    assert not text_of(results, ContentToken)
    no_markers(results)


async def test_thinking_off_sends_content_only(session: AgentSession) -> None:
    await session.apply(template=THINKING)
    results = await session.generate(conversation("What is 2+2?", max_tokens=40))
    usage = usage_of(results)
    assert not [r for r in results if isinstance(r, ReasoningToken | UndeterminableToken)]
    assert (usage.reasoning_tokens, usage.undeterminable_tokens) == (0, 0)
    assert usage.completion_tokens == usage.content_tokens > 0
    no_markers(results)


async def test_reasoning_the_model_writes_is_split_from_the_answer(session: AgentSession) -> None:
    await session.apply(template=THINKING)
    prompt = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    results = await session.generate(raw_prompt(prompt, 60, grammar=FORCED_THOUGHT))
    assert text_of(results, ReasoningToken) == "I add two and two."
    assert text_of(results, ContentToken) == "The answer is 4."
    usage = usage_of(results)
    assert usage.reasoning_tokens > 0 and usage.content_tokens > 0
    no_markers(results)


async def test_thinking_off_hides_reasoning_a_model_writes_anyway(session: AgentSession) -> None:
    await session.apply(template=ALWAYS_THINKING)
    results = await session.generate(
        conversation("What is 2+2?", max_tokens=60, grammar=FORCED_THOUGHT)
    )
    assert not [r for r in results if isinstance(r, ReasoningToken)]
    assert text_of(results, ContentToken) == "The answer is 4."
    assert usage_of(results).reasoning_tokens > 0  # generated, counted, not sent
    no_markers(results)


# Tool calls.


async def test_a_hermes_tool_call_is_parsed(session: AgentSession) -> None:
    await session.apply(template=TOOLS)
    results = await session.generate(
        conversation(
            "What is the weather in Paris?",
            max_tokens=80,
            tools=[weather_tool()],
            parse_tool_calls=True,
            grammar=tool_call_grammar(),
        )
    )
    parsed = [r for r in results if isinstance(r, ToolCallParsed)]
    assert len(parsed) == 1
    [call] = parsed[0].value
    assert (call.id, call.name) == ("call_0", "get_weather")
    assert isinstance(call.arguments, ValidJson) and isinstance(call.arguments.value, dict)
    location = call.arguments.value["location"]
    assert isinstance(location, str) and location.istitle()
    raw = text_of(results, ToolCallToken)
    assert json.loads(raw) == {"name": "get_weather", "arguments": {"location": location}}
    usage = usage_of(results)
    assert usage.tool_call_tokens > 0
    assert usage.content_tokens == 0
    no_markers(results)


async def test_arguments_that_break_the_schema_fail_validation(session: AgentSession) -> None:
    await session.apply(template=TOOLS)
    results = await session.generate(
        conversation(
            "What is the weather in Paris?",
            max_tokens=80,
            tools=[weather_tool("integer")],
            parse_tool_calls=True,
            grammar=tool_call_grammar(),
        )
    )
    [failed] = [r for r in results if isinstance(r, ToolCallValidationFailed)]
    [message] = failed.value
    assert message.startswith('arguments for tool "get_weather" failed schema check: ')
    assert "is not of type 'integer'" in message
    assert isinstance(results[-1], Done)


async def test_an_unknown_tool_and_an_unknown_format(session: AgentSession) -> None:
    await session.apply(template=TOOLS)
    unknown = await session.generate(
        conversation(
            "Wake me up.",
            max_tokens=80,
            tools=[weather_tool()],
            parse_tool_calls=True,
            grammar=tool_call_grammar("set_alarm"),
        )
    )
    assert ToolCallValidationFailed(value=['unknown tool name "set_alarm"']) in unknown
    garbled = await session.generate(
        conversation(
            "Hi",
            max_tokens=40,
            tools=[weather_tool()],
            parse_tool_calls=True,
            grammar=tool_call_grammar(body='"hello"'),
        )
    )
    assert (
        UnrecognizedToolCallFormat(
            text="<tool_call>hello</tool_call>",
            ffi_error_message='expected a JSON object with "name" and "arguments"',
        )
        in garbled
    )


async def test_an_uncompilable_tool_schema_ends_the_request_before_generation(
    session: AgentSession,
) -> None:
    await session.apply(template=TOOLS)
    results = await session.generate(
        conversation("Hi", max_tokens=20, tools=[weather_tool(123)], parse_tool_calls=True)
    )
    assert len(results) == 1
    assert isinstance(results[0], ToolSchemaInvalid)
    assert results[0].value.startswith(
        'tool "get_weather" parameters are not a valid JSON Schema: '
    )


async def test_without_parse_tool_calls_only_raw_tokens_stream(session: AgentSession) -> None:
    await session.apply(template=TOOLS)
    results = await session.generate(
        conversation(
            "Weather in Paris?", max_tokens=80, tools=[weather_tool()], grammar=tool_call_grammar()
        )
    )
    assert text_of(results, ToolCallToken).startswith('{"name": "get_weather"')
    kinds = {type(r) for r in results}
    assert kinds <= {ToolCallToken, UndeterminableToken, ContentToken, Done}


async def test_max_tokens_does_not_count_tool_call_tokens(session: AgentSession) -> None:
    await session.apply(template=TOOLS)
    grammar = GbnfGrammar(
        grammar=tool_call_grammar().grammar + ' " It is sunny and warm there today."',
        root="root",
    )
    # SmolLM2 spells "<tool_call>" in 5 tokens; the 4 before ">" are undeterminable.
    results = await session.generate(
        conversation("Weather?", max_tokens=8, tools=[weather_tool()], grammar=grammar)
    )
    usage = usage_of(results)
    assert usage.content_tokens + usage.reasoning_tokens + usage.undeterminable_tokens == 8
    assert usage.undeterminable_tokens == 4
    assert usage.tool_call_tokens > 8
    assert text_of(results, ContentToken).startswith(" It is")


# Prompt cache.


async def test_a_growing_chat_pays_only_for_the_new_turn(session: AgentSession) -> None:
    await session.apply()
    first = await session.generate(conversation("Name a famous painter.", max_tokens=16))
    answer = text_of(first, ContentToken)
    follow_up = ("Name a famous painter.", answer, "Name one of their paintings.")
    second = await session.generate(conversation(*follow_up, max_tokens=16))
    first_usage, second_usage = usage_of(first), usage_of(second)
    assert second_usage.cached_prompt_tokens >= first_usage.prompt_tokens - 1
    assert second_usage.prompt_tokens > first_usage.prompt_tokens
    # Fill every slot with an unrelated prompt, so the replay finds nothing to reuse.
    fillers = [raw_prompt(f"Unrelated text number {n}.", 2) for n in range(session.slots)]
    request_ids = [await session.endpoint.request(session.agent, r) for r in fillers]
    for request_id in request_ids:
        await session.endpoint.tokens(session.agent, request_id)
    replay = await session.generate(conversation(*follow_up, max_tokens=16))
    assert usage_of(replay).cached_prompt_tokens <= 1
    assert text_of(replay, ContentToken) == text_of(second, ContentToken)


async def test_embeddings_are_disabled_in_generation_mode(session: AgentSession) -> None:
    await session.apply()
    assert await session.embed([("doc", "text")], L2()) == [EmbeddingsDisabled()]
    await session.idle()
