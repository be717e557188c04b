"""Embedding batches across real agents, and the cluster's generation/embeddings mode.

Splitting as spec §3.5 says with exactly one final Done; the socket's GenerateEmbeddingBatch
extension; the 501s and TokenGenerationEnabled/Disabled notifications (issue item 2; §3.6, §8.5).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from paddler_tui.protocol.embedding import EmbeddingDone, EmbeddingProduced
from paddler_tui.protocol.envelope import EmbeddingResponse
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from tests.support.cluster import (
    Cluster,
    collect,
    deterministic_state,
    http_client,
    raw_prompt_body,
    socket_request,
)

pytestmark = pytest.mark.slow

MakeCluster = Callable[[str], Cluster]
EMBEDDINGS = "/api/v1/generate_embedding_batch"
TOKENS_DISABLED = "Token generation is disabled while the cluster is configured for embeddings"
DISABLED = {"Notification": "TokenGenerationDisabled"}
ENABLED = {"Notification": "TokenGenerationEnabled"}


def batch(count: int) -> dict[str, object]:
    return {
        "input_batch": [
            {"id": f"doc-{i}", "content": f"Document number {i}."} for i in range(count)
        ],
        "normalization_method": "L2",
    }


@pytest.fixture(scope="module")
def cluster(make_module_cluster: MakeCluster) -> Cluster:
    return make_module_cluster("embeddings").start(
        agents=2, slots=2, state=deterministic_state(enable_embeddings=True)
    )


async def test_a_batch_is_split_across_agents_with_one_final_done(cluster: Cluster) -> None:
    async with http_client() as client:
        messages = await collect(client, f"{cluster.b.inference_url}{EMBEDDINGS}", batch(5))

    *results, final = messages
    assert all(isinstance(m, ResponseEnvelope) for m in messages)
    chunks: dict[str, list[str]] = defaultdict(list)
    producers: dict[str, set[str]] = defaultdict(set)
    for message in results:
        assert isinstance(message, ResponseEnvelope)
        assert isinstance(message.response, EmbeddingResponse)
        produced = message.response.value
        assert isinstance(produced, EmbeddingProduced)
        assert len(produced.value.embedding) > 0
        chunks[message.request_id].append(produced.value.source_document_id)
        assert message.generated_by is not None
        producers[message.request_id].add(message.generated_by)
    # min(5, max(2 agents, ceil(5 / 256))) = 2 chunks, in order, the first one larger.
    assert sorted(chunks.values(), key=len, reverse=True) == [
        ["doc-0", "doc-1", "doc-2"],
        ["doc-3", "doc-4"],
    ]
    assert sorted(p for (p,) in producers.values()) == ["agent-1", "agent-2"]
    assert isinstance(final, ResponseEnvelope)
    assert final == ResponseEnvelope(
        generated_by=None,
        request_id=final.request_id,
        response=EmbeddingResponse(value=EmbeddingDone()),
    )
    assert final.request_id not in chunks


async def test_an_empty_batch_is_only_the_final_done(cluster: Cluster) -> None:
    async with http_client() as client:
        messages = await collect(client, f"{cluster.b.inference_url}{EMBEDDINGS}", batch(0))

    (final,) = messages
    assert isinstance(final, ResponseEnvelope)
    assert final.response == EmbeddingResponse(value=EmbeddingDone())


async def test_the_socket_serves_embedding_batches_under_the_clients_id(cluster: Cluster) -> None:
    async with connect(cluster.b.inference_socket_url) as socket:
        assert json.loads(await socket.recv()) == DISABLED
        await socket.send(
            json.dumps(
                {"Request": {"id": "emb-1", "request": {"GenerateEmbeddingBatch": batch(3)}}}
            )
        )
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1]["Response"]["response"] != {"Embedding": "Done"}:
            frames.append(json.loads(await socket.recv()))

    assert {f["Response"]["request_id"] for f in frames} == {"emb-1"}
    documents = Counter(
        f["Response"]["response"]["Embedding"]["Embedding"]["source_document_id"]
        for f in frames[:-1]
    )
    assert documents == {"doc-0": 1, "doc-1": 1, "doc-2": 1}


async def test_token_generation_is_refused_in_embeddings_mode(cluster: Cluster) -> None:
    async with http_client() as client:
        refused = [
            await client.post(f"{cluster.b.inference_url}{path}", json=body)
            for path, body in (
                ("/api/v1/continue_from_raw_prompt", raw_prompt_body(4)),
                (
                    "/api/v1/continue_from_conversation_history",
                    {
                        "add_generation_prompt": True,
                        "conversation_history": [{"role": "user", "content": "Hi"}],
                        "enable_thinking": False,
                        "max_tokens": 4,
                    },
                ),
            )
        ]
    async with connect(cluster.b.inference_socket_url) as socket:
        assert json.loads(await socket.recv()) == DISABLED
        await socket.send(socket_request("gen-1", 4))
        answer = json.loads(await socket.recv())

    assert [(r.status_code, r.text) for r in refused] == [(501, TOKENS_DISABLED)] * 2
    assert answer == {
        "Response": {
            "generated_by": None,
            "request_id": "gen-1",
            "response": {"GeneratedToken": {"TokenGenerationDisabled": TOKENS_DISABLED}},
        }
    }


async def reply_to(socket: ClientConnection, request_id: str) -> dict[str, object]:
    await socket.send(socket_request(request_id, 4))
    frame: dict[str, object] = json.loads(await socket.recv())
    return frame


async def test_sockets_hear_of_every_mode_change(make_cluster: MakeCluster) -> None:
    cluster = make_cluster("modes")
    cluster.start_balancer("--buffered-request-timeout", "50")  # no agents: quick 504s
    timed_out = {"code": 504, "description": "Waiting for available slot timed out"}

    async with connect(cluster.b.inference_socket_url) as first:
        # Generation mode: nothing is announced on connect; the first frame is a reply.
        assert await reply_to(first, "r-1") == {"Error": {"request_id": "r-1", "error": timed_out}}

        cluster.put_state(deterministic_state(enable_embeddings=True))
        assert json.loads(await first.recv()) == DISABLED
        async with connect(cluster.b.inference_socket_url) as second:
            assert json.loads(await second.recv()) == DISABLED

            cluster.put_state(deterministic_state(enable_embeddings=True, temperature=0.5))
            cluster.put_state(deterministic_state())
            for socket in (first, second):
                # The PUT that kept the mode announced nothing.
                assert json.loads(await socket.recv()) == ENABLED

            cluster.put_state(deterministic_state(temperature=0.5))
            for socket in (first, second):
                assert await reply_to(socket, "r-2") == {
                    "Error": {"request_id": "r-2", "error": timed_out}
                }

    async with http_client() as client:
        response = await client.post(f"{cluster.b.inference_url}{EMBEDDINGS}", json=batch(1))
    assert response.status_code == 501
