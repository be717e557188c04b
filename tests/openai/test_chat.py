"""Chat completions: request mapping, stream chunks and the plain answer (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest

from paddler_tui.protocol.conversation import ConversationMessage, ImageUrl, ImageUrlPart, TextPart
from paddler_tui.protocol.generated_token import InvalidJson, ParsedToolCall, ValidJson
from paddler_tui.protocol.requests import SamplingOverrides
from paddler_tui.protocol.token_stream import TextPiece, ToolCalls
from paddler_tui.server.balancer.openai.chat import ChatCompletion, chat_request_params
from paddler_tui.server.balancer.openai.errors import OpenAIError
from paddler_tui.server.balancer.openai.generation import GenerationEvent
from paddler_tui.server.balancer.openai.models import ChatCompletionRequest
from tests.openai.messages import finished


def request(**fields: Any) -> ChatCompletionRequest:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return ChatCompletionRequest.model_validate(body)


def completion(*, include_usage: bool = False, max_tokens: int = 10) -> ChatCompletion:
    return ChatCompletion(
        request_id="req",
        model="m",
        created=1700000000,
        max_tokens=max_tokens,
        include_usage=include_usage,
    )


def stream(chat: ChatCompletion, *events: GenerationEvent) -> list[dict[str, Any]]:
    return [chunk for event in events for chunk in chat.chunks(event)]


WEATHER = ParsedToolCall(id="call_0", name="get_weather", arguments=ValidJson(value={"q": "NYC"}))


# Request mapping.


def test_mapping_to_the_native_request() -> None:
    params = chat_request_params(request())
    assert params.add_generation_prompt
    assert params.enable_thinking
    assert params.max_tokens == 2000
    assert params.grammar is None
    assert not params.parse_tool_calls
    assert params.sampling is None
    assert params.conversation_history == [ConversationMessage(role="user", content="hi")]


def test_max_completion_tokens_wins_over_the_older_max_tokens() -> None:
    assert chat_request_params(request(max_tokens=7)).max_tokens == 7
    both = request(max_tokens=7, max_completion_tokens=9)
    assert chat_request_params(both).max_tokens == 9


def test_sampling_and_reasoning_effort() -> None:
    params = chat_request_params(
        request(temperature=0.3, top_p=0.5, seed=42, reasoning_effort="none")
    )
    assert params.sampling == SamplingOverrides(temperature=0.3, top_p=0.5, seed=42)
    assert not params.enable_thinking


def test_out_of_range_sampling_is_rejected() -> None:
    with pytest.raises(ValueError, match="temperature"):
        request(temperature=2.5)


def test_unknown_fields_are_ignored_and_only_function_tools_kept() -> None:
    params = chat_request_params(
        request(
            n=1,
            user="u",
            parallel_tool_calls=True,
            tools=[
                {"type": "custom", "custom": {"name": "x"}},
                {
                    "type": "function",
                    "function": {"name": "f", "strict": True, "parameters": {"type": "object"}},
                },
            ],
        )
    )
    assert [tool.function.name for tool in params.tools] == ["f"]
    assert params.parse_tool_calls
    only_custom = request(tools=[{"type": "custom", "custom": {"name": "x"}}])
    assert not chat_request_params(only_custom).parse_tool_calls


def test_messages_with_parts_tool_calls_and_results() -> None:
    params = chat_request_params(
        request(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this"},
                        {"type": "image_url", "image_url": {"url": "data:x", "detail": "low"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "developer", "content": "be brief"},
            ]
        )
    )
    assert params.conversation_history == [
        ConversationMessage(
            role="user",
            content=[
                TextPart(text="what is this"),
                ImageUrlPart(image_url=ImageUrl(url="data:x")),
            ],
        ),
        ConversationMessage(
            role="assistant", content='{"call_id":"call_1","name":"f","arguments":"{\\"a\\":1}"}'
        ),
        ConversationMessage(role="tool", content="42"),
        ConversationMessage(role="system", content="be brief"),
    ]


def test_unsupported_content_parts_are_rejected() -> None:
    with pytest.raises(ValueError, match="input_audio"):
        request(messages=[{"role": "user", "content": [{"type": "input_audio"}]}])


def test_bad_tool_schema_is_a_400() -> None:
    bad = {"type": "object", "properties": {}, "required": ["city"]}
    with pytest.raises(OpenAIError) as raised:
        chat_request_params(
            request(tools=[{"type": "function", "function": {"name": "f", "parameters": bad}}])
        )
    assert raised.value.status_code == 400
    assert raised.value.message == "Required field 'city' not found in properties"


# Streaming.


def test_content_chunks() -> None:
    chat = completion()
    [chunk] = chat.chunks(TextPiece("Hel", reasoning=False))
    assert chunk == {
        "id": "req",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "m",
        "system_fingerprint": chat.fingerprint,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": "Hel"},
                "logprobs": None,
                "finish_reason": None,
            }
        ],
    }


def test_reasoning_is_not_streamed() -> None:
    assert completion().chunks(TextPiece("hmm", reasoning=True)) == []


def test_stream_ends_with_stop_and_no_usage_unless_asked() -> None:
    chunks = stream(completion(), TextPiece("a", reasoning=False), finished(content=1))
    assert chunks[-1]["choices"] == [
        {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert all("usage" not in chunk for chunk in chunks)


def test_include_usage_adds_a_last_chunk_without_choices() -> None:
    chunks = stream(
        completion(include_usage=True),
        TextPiece("a", reasoning=False),
        finished(prompt=4, content=3, reasoning=2),
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 5,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 2},
    }
    assert sum("usage" in chunk for chunk in chunks) == 1


def test_length_when_max_tokens_cut_the_answer() -> None:
    chunks = stream(completion(max_tokens=3), finished(content=3))
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_tool_calls_are_one_chunk_each_time_with_running_indices() -> None:
    second = ParsedToolCall(id="call_1", name="g", arguments=InvalidJson(value="{oops"))
    chunks = stream(completion(), ToolCalls([WEATHER]), ToolCalls([second]), finished(tool_call=9))
    assert [chunk["choices"][0]["delta"]["tool_calls"] for chunk in chunks[:2]] == [
        [
            {
                "index": 0,
                "id": "call_0",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"q":"NYC"}'},
            }
        ],
        [
            {
                "index": 1,
                "id": "call_1",
                "type": "function",
                "function": {"name": "g", "arguments": "{oops"},
            }
        ],
    ]
    # Tool calls win over length even when they spent the whole budget.
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_errors_are_events_and_the_stream_goes_on() -> None:
    failure = OpenAIError(500, "could not parse the tool call")
    chunks = stream(completion(), failure, TextPiece("a", reasoning=False), finished())
    assert chunks[0] == failure.body()
    assert chunks[1]["choices"][0]["delta"]["content"] == "a"


# Plain answer.


def test_answer_with_usage() -> None:
    chat = completion()
    for event in (TextPiece("Hel", False), TextPiece("..", True), TextPiece("lo", False)):
        chat.feed(event)
    chat.feed(finished(prompt=4, content=2, reasoning=1))
    status, body = chat.answer()
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert body["usage"]["total_tokens"] == 7
    assert body["service_tier"] == "default"


def test_answer_with_tool_calls_has_no_content() -> None:
    chat = completion()
    chat.feed(ToolCalls([WEATHER]))
    chat.feed(finished(tool_call=5))
    _, body = chat.answer()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"q":"NYC"}'},
        }
    ]


def test_any_error_fails_the_answer() -> None:
    chat = completion()
    chat.feed(TextPiece("a", False))
    chat.feed(OpenAIError(504, "Waiting for available slot timed out", error_type="timeout"))
    assert chat.done
    status, body = chat.answer()
    assert status == 504
    assert body["error"]["type"] == "timeout"


def test_no_done_is_a_server_error() -> None:
    status, body = completion().answer()
    assert status == 500
    assert body["error"]["message"] == "no completion produced"


def test_prompt_cache_key_is_the_affinity_key_before_user() -> None:
    assert request().affinity_key is None
    assert request(user="u").affinity_key == "u"
    assert request(user="u", prompt_cache_key="k").affinity_key == "k"
