"""Responses: request mapping, the event stream and the response object (no sockets)."""

from __future__ import annotations

from typing import Any

import orjson

from paddler_tui.protocol.conversation import ConversationMessage, ImageUrl, ImageUrlPart, TextPart
from paddler_tui.protocol.generated_token import ParsedToolCall, ValidJson
from paddler_tui.protocol.grammar import JsonSchemaGrammar
from paddler_tui.protocol.token_stream import TextPiece, ToolCalls
from paddler_tui.server.balancer.openai.errors import OpenAIError
from paddler_tui.server.balancer.openai.generation import GenerationEvent
from paddler_tui.server.balancer.openai.models import ResponsesRequest
from paddler_tui.server.balancer.openai.responses import ResponsesOutput, responses_request_params
from tests.openai.messages import finished


def request(**fields: Any) -> ResponsesRequest:
    body: dict[str, Any] = {"model": "m", "input": "hi"}
    body.update(fields)
    return ResponsesRequest.model_validate(body)


def output(max_tokens: int = 100) -> ResponsesOutput:
    return ResponsesOutput(
        response_id="resp_x",
        model="m",
        created_at=1700000000,
        instructions=None,
        max_tokens=max_tokens,
        temperature=0.8,
        top_p=0.8,
    )


def run(state: ResponsesOutput, *events: GenerationEvent) -> list[dict[str, Any]]:
    return [payload for event in events for payload in state.events(event)]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"].removeprefix("response.") for event in events]


# Request mapping.


def test_string_input_instructions_and_defaults() -> None:
    params = responses_request_params(request(instructions="be brief"))
    assert params.conversation_history == [
        ConversationMessage(role="system", content="be brief"),
        ConversationMessage(role="user", content="hi"),
    ]
    assert params.max_tokens == 2000
    assert params.enable_thinking
    assert params.grammar is None


def test_input_items() -> None:
    params = responses_request_params(
        request(
            input=[
                {"role": "developer", "content": "rules"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "data:x", "detail": "auto"},
                        {"type": "input_file", "file_id": "f"},
                    ],
                },
                {"type": "reasoning", "id": "rs_0", "summary": []},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [
                        {"type": "input_text", "text": "4"},
                        {"type": "input_text", "text": "2"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "42", "annotations": []}],
                },
            ]
        )
    )
    assert params.conversation_history == [
        ConversationMessage(role="system", content="rules"),
        ConversationMessage(
            role="user",
            content=[TextPart(text="look"), ImageUrlPart(image_url=ImageUrl(url="data:x"))],
        ),
        ConversationMessage(
            role="assistant", content='{"call_id":"c1","name":"f","arguments":"{}"}'
        ),
        ConversationMessage(role="tool", content="42"),
        ConversationMessage(role="assistant", content=[TextPart(text="42")]),
    ]


def test_tools_format_reasoning_and_sampling() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "number"}}}
    params = responses_request_params(
        request(
            tools=[
                {"type": "web_search"},
                {"type": "function", "name": "f", "parameters": schema, "strict": True},
            ],
            text={"format": {"type": "json_schema", "name": "out", "schema": schema}},
            reasoning={"effort": "none", "summary": "auto"},
            max_output_tokens=50,
            temperature=0.2,
            store=False,
            previous_response_id="resp_y",
        )
    )
    assert [tool.function.name for tool in params.tools] == ["f"]
    assert params.parse_tool_calls
    assert params.grammar == JsonSchemaGrammar(schema=orjson.dumps(schema).decode())
    assert not params.enable_thinking
    assert params.max_tokens == 50
    assert params.sampling is not None and params.sampling.temperature == 0.2


# Streaming.


def test_text_stream_from_created_to_completed() -> None:
    state = output()
    events = run(state, TextPiece("He", False), TextPiece("llo", False), finished(content=2))
    assert kinds(events) == [
        "created",
        "in_progress",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[0]["response"]["status"] == "in_progress"
    assert events[4] == {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        "item_id": "msg_0",
        "output_index": 0,
        "content_index": 0,
        "delta": "He",
        "logprobs": [],
    }
    completed = events[-1]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == [
        {
            "id": "msg_0",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [
                {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}
            ],
        }
    ]
    assert completed["usage"] == {
        "input_tokens": 7,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 2,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 9,
    }
    assert state.answer() == (200, completed)


def test_reasoning_then_message_then_tool_call() -> None:
    call = ParsedToolCall(id="call_0", name="f", arguments=ValidJson(value={"a": 1}))
    state = output()
    events = run(
        state,
        TextPiece("think", True),
        TextPiece("ok", False),
        ToolCalls([call]),
        finished(content=1, reasoning=1, tool_call=3),
    )
    assert kinds(events)[2:] == [
        "output_item.added",
        "reasoning_text.delta",
        "reasoning_text.done",
        "output_item.done",
        "output_item.added",
        "content_part.added",
        "output_text.delta",
        "output_text.done",
        "content_part.done",
        "output_item.done",
        "output_item.added",
        "function_call_arguments.delta",
        "function_call_arguments.done",
        "output_item.done",
        "completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert "logprobs" not in events[3]  # reasoning deltas carry none
    assert events[-3] == {
        "type": "response.function_call_arguments.done",
        "sequence_number": len(events) - 3,
        "item_id": "fc_2",
        "output_index": 2,
        "name": "f",
        "arguments": '{"a":1}',
    }
    items = events[-1]["response"]["output"]
    assert [item["id"] for item in items] == ["rs_0", "msg_1", "fc_2"]
    assert items[0]["content"] == [{"type": "reasoning_text", "text": "think"}]
    assert items[2] == {
        "type": "function_call",
        "id": "fc_2",
        "call_id": "call_0",
        "name": "f",
        "arguments": '{"a":1}',
        "status": "completed",
    }


def test_an_empty_answer_still_has_a_message() -> None:
    state = output()
    run(state, finished(content=0))
    _, body = state.answer()
    assert body["output"][0]["content"][0]["text"] == ""


def test_cut_by_max_output_tokens_is_incomplete() -> None:
    state = output(max_tokens=2)
    events = run(state, TextPiece("a", False), TextPiece("b", False), finished(content=2))
    assert events[-1]["type"] == "response.incomplete"
    response = events[-1]["response"]
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    assert response["usage"]["output_tokens"] == 2


def test_failure_ends_the_stream_with_the_preamble_first() -> None:
    state = output()
    events = run(
        state, OpenAIError(429, "Buffered requests overflow", error_type="rate_limit_error")
    )
    assert kinds(events) == ["created", "in_progress", "failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed"
    assert failed["output"] == []
    assert failed["error"] == {
        "code": "rate_limit_exceeded",
        "message": "Buffered requests overflow",
    }
    assert state.done
    assert state.events(TextPiece("late", False)) == []
    status, body = state.answer()
    assert (status, body["error"]["type"]) == (429, "rate_limit_error")


def test_a_failure_mid_answer_drops_the_output() -> None:
    state = output()
    events = run(
        state, TextPiece("a", False), OpenAIError(502, "Agent controller connection closed")
    )
    assert events[-1]["response"]["output"] == []
    assert events[-1]["response"]["error"]["code"] == "server_error"


def test_no_done_is_a_server_error() -> None:
    status, body = output().answer()
    assert (status, body["error"]["message"]) == (500, "no response produced")


def test_user_is_the_affinity_key_without_a_prompt_cache_key() -> None:
    assert request(user="u").affinity_key == "u"
    assert request(user="u", prompt_cache_key="k").affinity_key == "k"
