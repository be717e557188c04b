"""The official ``openai`` client against a real balancer and agent with the default model."""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

import httpx
import openai
import orjson
import pytest

from paddler_tui.models import default_model_path
from tests.openai.conftest import openai_client
from tests.support.cluster import Cluster

pytestmark = pytest.mark.slow

QUESTION: list[Any] = [{"role": "user", "content": "What is 2+2?"}]
STORY: list[Any] = [{"role": "user", "content": "Tell me a story."}]


class TokenLimit(TypedDict, total=False):
    max_tokens: int
    max_completion_tokens: int


class Sampling(TypedDict, total=False):
    temperature: float
    seed: int


def sse_data(cluster: Cluster, path: str, body: dict[str, Any]) -> list[str]:
    """The ``data:`` payloads of an SSE answer, raw."""
    response = httpx.post(f"{cluster.b.openai_url}{path}", json=body, timeout=60)
    assert response.headers["content-type"].startswith("text/event-stream")
    return [
        line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")
    ]


def test_health(cluster: Cluster) -> None:
    response = httpx.get(f"{cluster.b.openai_url}/health")
    assert (response.status_code, response.text) == (200, "OK")


def test_chat_with_usage(cluster: Cluster) -> None:
    completion = openai_client(cluster).chat.completions.create(
        model="smol", messages=QUESTION, max_completion_tokens=100
    )
    assert completion.object == "chat.completion"
    assert completion.model == "smol"
    [choice] = completion.choices
    assert choice.message.content
    assert choice.finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_stream_with_usage_ends_with_a_usage_chunk(cluster: Cluster) -> None:
    chunks = list(
        openai_client(cluster).chat.completions.create(
            model="smol",
            messages=QUESTION,
            max_completion_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_stream_without_usage_ends_with_done(cluster: Cluster) -> None:
    events = sse_data(
        cluster,
        "/v1/chat/completions",
        {"model": "smol", "messages": QUESTION, "max_completion_tokens": 100, "stream": True},
    )
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert chunks and all("usage" not in chunk for chunk in chunks)


@pytest.mark.parametrize(
    "limit",
    [TokenLimit(max_tokens=3), TokenLimit(max_completion_tokens=3)],
    ids=["max_tokens", "max_completion_tokens"],
)
def test_length_when_the_token_limit_cuts(cluster: Cluster, limit: TokenLimit) -> None:
    client = openai_client(cluster)
    completion = client.chat.completions.create(model="smol", messages=STORY, **limit)
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    chunks = list(
        client.chat.completions.create(model="smol", messages=STORY, stream=True, **limit)
    )
    assert chunks[-1].choices[0].finish_reason == "length"


def test_temperature_and_seed_per_request(cluster: Cluster) -> None:
    client = openai_client(cluster)

    def story(**sampling: Unpack[Sampling]) -> str | None:
        completion = client.chat.completions.create(
            model="smol", messages=STORY, max_completion_tokens=12, **sampling
        )
        return completion.choices[0].message.content

    # The cluster samples greedily; a request's temperature makes it random, its seed repeatable.
    assert story() == story()
    assert story(temperature=1.5, seed=1) == story(temperature=1.5, seed=1)
    assert len({story(temperature=1.5, seed=seed) for seed in (1, 2, 3)}) > 1


def test_models_list_the_loaded_model(cluster: Cluster) -> None:
    client = openai_client(cluster)
    name = default_model_path().name
    assert [model.id for model in client.models.list()] == [name]
    assert client.models.retrieve(name).id == name
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_responses(cluster: Cluster) -> None:
    response = openai_client(cluster).responses.create(
        model="smol", input="What is 2+2?", instructions="Answer briefly.", max_output_tokens=100
    )
    assert response.status == "completed"
    assert response.output_text
    assert response.instructions == "Answer briefly."
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens + usage.output_tokens == usage.total_tokens


def test_responses_stream(cluster: Cluster) -> None:
    events = list(
        openai_client(cluster).responses.create(
            model="smol", input="What is 2+2?", max_output_tokens=100, stream=True
        )
    )
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas and deltas == events[-1].response.output_text


def test_responses_cut_short_are_incomplete(cluster: Cluster) -> None:
    response = openai_client(cluster).responses.create(
        model="smol", input="Hi", max_output_tokens=3
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_opencode_style_request_with_unknown_keys(cluster: Cluster) -> None:
    # Paddler issue #253: strict parsing of such a request failed.
    body = {
        "model": "smol",
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Read the file notes.txt"},
        ],
        "max_tokens": 8,
        "stream": False,
        "temperature": 0,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "provider": {"order": ["paddler"]},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read",
                    "description": "Read a file",
                    "strict": False,
                    "parameters": {
                        "$schema": "http://json-schema.org/draft-07/schema#",
                        "type": "object",
                        "properties": {"path": {"type": "string", "minLength": 1}},
                        "required": ["path"],
                        "additionalProperties": {"not": {}},
                    },
                },
                "cache_control": {"type": "ephemeral"},
            }
        ],
    }
    response = httpx.post(f"{cluster.b.openai_url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"model": "smol", "messages": [', "Json deserialize error"),
        (b'{"model": "smol"}', "messages"),
        (
            b'{"model": "smol", "messages": [{"role": "user", '
            b'"content": [{"type": "input_audio"}]}]}',
            "input_audio",
        ),
    ],
)
def test_bad_bodies_are_invalid_requests(cluster: Cluster, content: bytes, message: str) -> None:
    response = httpx.post(
        f"{cluster.b.openai_url}/v1/chat/completions",
        content=content,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


def test_bad_tool_schema_is_a_400(cluster: Cluster) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client(cluster).chat.completions.create(
            model="smol",
            messages=QUESTION,
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": {}, "required": ["x"]},
                    },
                }
            ],
        )
    assert raised.value.body == {
        "message": "Required field 'x' not found in properties",
        "type": "invalid_request_error",
        "param": "tools",
        "code": None,
    }


def test_embeddings_need_embeddings_mode(cluster: Cluster) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client(cluster).embeddings.create(model="smol", input=["a", "b"])
    assert raised.value.status_code == 501
    assert raised.value.message.endswith(
        "Embedding generation is not enabled in the inference parameters"
    )


def test_unknown_routes_answer_in_openai_shape(cluster: Cluster) -> None:
    response = httpx.post(f"{cluster.b.openai_url}/v1/completions", json={})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
