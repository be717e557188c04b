"""OpenAI error statuses from real balancers: 429 overflow, 504 buffer timeout, 501 mode, 503.

Also that a client leaving a buffered request, streaming or not, frees its place at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsBase
from openai.types.responses.response_create_params import ResponseCreateParamsBase

from tests.openai.conftest import openai_client
from tests.support.cluster import Cluster, greedy_state, watch_buffer

pytestmark = pytest.mark.slow

QUESTION: list[Any] = [{"role": "user", "content": "What is 2+2?"}]
CHAT: CompletionCreateParamsBase = {
    "model": "smol",
    "messages": QUESTION,
    "max_completion_tokens": 50,
}
RESPONSE: ResponseCreateParamsBase = {
    "model": "smol",
    "input": "What is 2+2?",
    "max_output_tokens": 50,
}


def sse_payloads(cluster: Cluster, path: str, body: Mapping[str, object]) -> list[str]:
    response = httpx.post(
        f"{cluster.b.openai_url}{path}", json={**body, "stream": True}, timeout=30
    )
    assert response.status_code == 200
    return [
        line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")
    ]


@pytest.fixture(scope="module")
def no_agents(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    """Every request waits in the buffer and gives up after 300 ms."""
    cluster = make_module_cluster("no-agents")
    cluster.start_balancer("--buffered-request-timeout", "300", openai=True)
    return cluster


@pytest.fixture(scope="module")
def waiting(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    """Every request waits in the buffer for a minute."""
    cluster = make_module_cluster("waiting")
    cluster.start_balancer("--buffered-request-timeout", "60000", openai=True)
    return cluster


@pytest.fixture(scope="module")
def embeddings_mode(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    cluster = make_module_cluster("embeddings-mode")
    cluster.start_balancer(openai=True)
    cluster.put_state(greedy_state(enable_embeddings=True))
    return cluster


@pytest.fixture(scope="module")
def one_slot(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    """One slot and no buffer: a second request overflows at once."""
    return make_module_cluster("one-slot").start(
        "--max-buffered-requests", "0", openai=True, agents=1, slots=1, state=greedy_state()
    )


def test_buffer_timeout_is_a_504(no_agents: Cluster) -> None:
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client(no_agents).chat.completions.create(**CHAT)
    assert time.monotonic() - started >= 0.3
    assert raised.value.status_code == 504
    assert raised.value.body == {
        "message": "Waiting for available slot timed out",
        "type": "timeout",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client(no_agents).responses.create(**RESPONSE)
    assert raised.value.status_code == 504


def test_buffer_timeout_in_streams(no_agents: Cluster) -> None:
    chat = sse_payloads(no_agents, "/v1/chat/completions", CHAT)
    assert orjson.loads(chat[0])["error"]["type"] == "timeout"
    assert chat[-1] == "[DONE]"
    events = [
        orjson.loads(payload) for payload in sse_payloads(no_agents, "/v1/responses", RESPONSE)
    ]
    assert [event["type"] for event in events] == [
        "response.created",
        "response.in_progress",
        "response.failed",
    ]
    assert events[-1]["response"]["error"]["message"] == "Waiting for available slot timed out"


def test_generation_routes_are_501_in_embeddings_mode(embeddings_mode: Cluster) -> None:
    client = openai_client(embeddings_mode)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(**CHAT)
    assert raised.value.status_code == 501
    assert raised.value.body == {
        "message": "Chat completions are disabled while the cluster is configured for embeddings",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.InternalServerError) as raised:
        client.responses.create(**RESPONSE, stream=True)
    assert raised.value.status_code == 501
    assert raised.value.message.endswith(
        "Responses are disabled while the cluster is configured for embeddings"
    )


def test_embeddings_without_agents_are_a_503(embeddings_mode: Cluster) -> None:
    with pytest.raises(openai.InternalServerError) as raised:
        openai_client(embeddings_mode).embeddings.create(model="smol", input="a")
    assert raised.value.status_code == 503
    assert raised.value.message.endswith("No agents are currently connected")


def test_overflow_is_a_429(one_slot: Cluster) -> None:
    client = openai_client(one_slot)
    busy = client.chat.completions.create(
        model="smol",
        messages=[{"role": "user", "content": "Count from 1 to 500."}],
        max_completion_tokens=2000,
        stream=True,
    )
    with busy:
        chunks = iter(busy)
        next(chunks)  # the slot is taken
        with pytest.raises(openai.RateLimitError) as raised:
            client.chat.completions.create(**CHAT)
        assert raised.value.body == {
            "message": "Buffered requests overflow",
            "type": "rate_limit_error",
            "param": None,
            "code": None,
        }
        with pytest.raises(openai.RateLimitError):
            client.responses.create(**RESPONSE)
        streamed = sse_payloads(one_slot, "/v1/chat/completions", CHAT)
        assert orjson.loads(streamed[0])["error"]["type"] == "rate_limit_error"
        # The first request streams on.
        assert all(chunk.choices for chunk, _ in zip(chunks, range(5), strict=False))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", CHAT),
        ("/v1/chat/completions", {**CHAT, "stream": True}),
        ("/v1/responses", RESPONSE),
        ("/v1/responses", {**RESPONSE, "stream": True}),
    ],
)
async def test_a_client_leaving_the_buffer_frees_its_place(
    waiting: Cluster, path: str, body: Mapping[str, object]
) -> None:
    async with (
        watch_buffer(waiting.b) as buffer,
        httpx.AsyncClient(base_url=waiting.b.openai_url, timeout=30) as http,
    ):
        request = asyncio.create_task(http.post(path, json=body))
        await buffer.until(lambda s: s.buffered_requests_current == 1, timeout=5)
        request.cancel()
        await buffer.until(lambda s: s.buffered_requests_current == 0, timeout=5)
