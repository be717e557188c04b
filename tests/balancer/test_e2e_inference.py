"""The inference service with a real agent: both protocols, body limits, socket rules.

One agent with one slot and ``--max-buffered-requests 0``: while the slot is busy any request
that reached the buffer would get an in-band 503, so a 400 or 413 status proves a bad request
took neither a slot nor a buffer place (issue item 7). Also the duplicate socket id, ignored
frames, the 50 MiB frame limit (issue items 2 and 7) and a real agent's proxy routes (§1.6).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.protocol.envelope import ErrorEnvelope, GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from tests.support.cluster import (
    Cluster,
    SnapshotWatcher,
    busy,
    collect,
    http_client,
    raw_prompt_body,
    socket_request,
    socket_stop,
    watch_agents,
)

pytestmark = pytest.mark.slow

LONG_MS = "60000"
TWO_MIB = 2 * 1024 * 1024
CONVERSATION = "/api/v1/continue_from_conversation_history"
RAW_PROMPT = "/api/v1/continue_from_raw_prompt"
EMBEDDINGS = "/api/v1/generate_embedding_batch"
OVERFLOW = {"code": 503, "description": "Buffered requests overflow"}


def conversation_body(
    text: str = "Say hi.", max_tokens: int = 8, **extra: object
) -> dict[str, object]:
    return {
        "add_generation_prompt": True,
        "conversation_history": [{"role": "user", "content": text}],
        "enable_thinking": False,
        "max_tokens": max_tokens,
        **extra,
    }


def embeddings_body(text: str = "x") -> dict[str, object]:
    return {"input_batch": [{"id": "1", "content": text}], "normalization_method": "L2"}


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    return make_module_cluster("inference").start(
        "--max-buffered-requests", "0", "--inference-item-timeout", LONG_MS, agents=1, slots=1
    )


@pytest.fixture
async def agents(cluster: Cluster) -> AsyncIterator[SnapshotWatcher[AgentControllerPoolSnapshot]]:
    async with watch_agents(cluster.b) as watcher:
        await watcher.until(lambda s: busy(s) == 0, timeout=10)
        yield watcher


@pytest.fixture
async def occupied(
    cluster: Cluster, agents: SnapshotWatcher[AgentControllerPoolSnapshot]
) -> AsyncIterator[ClientConnection]:
    """The only slot busy with a long socket request whose id is ``long``."""
    async with connect(cluster.b.inference_socket_url) as socket:
        await socket.send(socket_request("long", 1000))
        await socket.recv()  # its first token: it is running on the agent
        await agents.until(lambda s: busy(s) == 1, timeout=10)
        yield socket


async def frames_until(socket: ClientConnection, request_id: str) -> list[dict[str, object]]:
    """Frames, skipping the long request's tokens, up to the first one about ``request_id``."""
    frames = []
    while True:
        frame = json.loads(await socket.recv())
        envelope = frame.get("Response") or frame.get("Error") or {}
        if envelope.get("request_id") == "long":
            continue
        frames.append(frame)
        if envelope.get("request_id") == request_id:
            return frames


async def test_conversation_and_raw_prompt_stream_ndjson_from_the_agent(
    cluster: Cluster, agents: SnapshotWatcher[AgentControllerPoolSnapshot]
) -> None:
    async with http_client() as client:
        for path, body in ((CONVERSATION, conversation_body()), (RAW_PROMPT, raw_prompt_body(8))):
            messages = await collect(client, f"{cluster.b.inference_url}{path}", body)
            responses = [m for m in messages if isinstance(m, ResponseEnvelope)]
            assert responses == messages
            (request_id,) = {m.request_id for m in responses}
            assert len(request_id) == 21
            assert {m.generated_by for m in responses} == {"agent-1"}
            generated = [m.response for m in responses if isinstance(m.response, GeneratedToken)]
            assert len(generated) == len(responses)
            *tokens, last = [g.value for g in generated]
            assert tokens and all(isinstance(t, ContentToken) for t in tokens)
            assert isinstance(last, Done)
            assert last.usage.content_tokens == len(tokens)


async def test_the_socket_multiplexes_requests_under_the_clients_ids(
    cluster: Cluster, agents: SnapshotWatcher[AgentControllerPoolSnapshot]
) -> None:
    async with connect(cluster.b.inference_socket_url) as socket:
        await socket.send(
            json.dumps(
                {
                    "Request": {
                        "id": "chat-1",
                        "request": {"ContinueFromConversationHistory": conversation_body()},
                    }
                }
            )
        )
        frames: list[dict[str, Any]] = []
        while not frames or "Done" not in frames[-1]["Response"]["response"]["GeneratedToken"]:
            frames.append(json.loads(await socket.recv()))
    assert {f["Response"]["request_id"] for f in frames} == {"chat-1"}
    assert {f["Response"]["generated_by"] for f in frames} == {"agent-1"}


@pytest.mark.parametrize(
    ("path", "body", "status", "names"),
    [
        (RAW_PROMPT, raw_prompt_body(8, "x" * TWO_MIB), 413, "limit"),
        (CONVERSATION, conversation_body("x" * TWO_MIB), 413, "limit"),
        (EMBEDDINGS, embeddings_body("x" * TWO_MIB), 413, "limit"),
        (RAW_PROMPT, {**raw_prompt_body(8), "temperature": 1}, 400, "temperature"),
        (CONVERSATION, conversation_body(surprise=True), 400, "surprise"),
        (EMBEDDINGS, {**embeddings_body(), "extra": 1}, 400, "extra"),
        (RAW_PROMPT, {"raw_prompt": "Hi"}, 400, "max_tokens"),
        (CONVERSATION, {"conversation_history": []}, 400, "add_generation_prompt"),
        (EMBEDDINGS, {"input_batch": []}, 400, "normalization_method"),
        (
            CONVERSATION,
            conversation_body(
                conversation_history=[{"role": "user", "content": "Hi", "name": "bob"}]
            ),
            400,
            "name",
        ),
        (
            CONVERSATION,
            conversation_body(
                tools=[
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "description": "d",
                            "parameters": {"type": "object", "properties": {}, "required": ["x"]},
                        },
                    }
                ]
            ),
            400,
            "Invalid request parameters: Required field 'x' not found in properties",
        ),
    ],
    ids=[
        "raw-too-big",
        "conversation-too-big",
        "embeddings-too-big",
        "raw-unknown-field",
        "conversation-unknown-field",
        "embeddings-unknown-field",
        "raw-missing-field",
        "conversation-missing-field",
        "embeddings-missing-field",
        "message-unknown-field",
        "invalid-tool-schema",
    ],
)
async def test_a_bad_body_is_refused_by_status_without_a_slot_or_buffer_place(
    cluster: Cluster,
    occupied: ClientConnection,
    *,
    path: str,
    body: dict[str, object],
    status: int,
    names: str,
) -> None:
    async with http_client() as client:
        refused = await client.post(f"{cluster.b.inference_url}{path}", json=body)
        # Control: a good request in the same moment reaches the (full, zero-sized) buffer.
        control = await collect(
            client, f"{cluster.b.inference_url}{RAW_PROMPT}", raw_prompt_body(4)
        )

    assert refused.status_code == status
    assert refused.headers["content-type"].startswith("text/plain")
    assert names in refused.text
    assert [m.error.model_dump() for m in control if isinstance(m, ErrorEnvelope)] == [OVERFLOW]
    assert len(control) == 1


@pytest.mark.parametrize("path", [RAW_PROMPT, CONVERSATION, EMBEDDINGS])
@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b'{"raw_prompt": "Hi", "max_tokens"', "application/json"), (b"{}", "text/plain")],
    ids=["malformed", "not-json"],
)
async def test_malformed_json_or_another_content_type_is_a_400(
    cluster: Cluster, path: str, content: bytes, content_type: str
) -> None:
    async with http_client() as client:
        refused = await client.post(
            f"{cluster.b.inference_url}{path}",
            content=content,
            headers={"content-type": content_type},
        )
    assert refused.status_code == 400
    assert refused.text.startswith(("Json deserialize error", "Content type error"))


async def test_a_chunked_body_over_the_limit_is_a_413(cluster: Cluster) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"max_tokens": 4, "raw_prompt": "'
        for _ in range(3):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    async with http_client() as client:
        refused = await client.post(
            f"{cluster.b.inference_url}{RAW_PROMPT}",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert refused.status_code == 413


async def test_embeddings_in_generation_mode_are_a_501(cluster: Cluster) -> None:
    async with http_client() as client:
        response = await client.post(
            f"{cluster.b.inference_url}{EMBEDDINGS}", json=embeddings_body()
        )
    assert (response.status_code, response.text) == (
        501,
        "Embedding generation is not enabled in the inference parameters",
    )


async def test_a_duplicate_socket_id_in_flight_is_a_400_and_reusable_after(
    cluster: Cluster,
    occupied: ClientConnection,
    agents: SnapshotWatcher[AgentControllerPoolSnapshot],
) -> None:
    await occupied.send(socket_request("long", 4))
    duplicate = json.loads(await _first_error(occupied))
    assert duplicate == {
        "Error": {
            "request_id": "long",
            "error": {
                "code": 400,
                "description": 'Request id "long" is already in flight on this connection',
            },
        }
    }
    # The first request under that id still streams.
    frame = json.loads(await occupied.recv())
    assert "ContentToken" in frame["Response"]["response"]["GeneratedToken"]

    # Ids are per connection: another socket may use it at the same time.
    async with connect(cluster.b.inference_socket_url) as other:
        await other.send(socket_request("long", 4))
        assert json.loads(await other.recv()) == {
            "Error": {"request_id": "long", "error": OVERFLOW}
        }

    await occupied.send(socket_stop("long"))
    await agents.until(lambda s: busy(s) == 0, timeout=5)
    await occupied.send(socket_request("long", 4))
    while (
        "Done"
        not in (frame := json.loads(await occupied.recv()))["Response"]["response"][
            "GeneratedToken"
        ]
    ):
        assert frame["Response"]["request_id"] == "long"


async def _first_error(socket: ClientConnection) -> str:
    while "Error" not in (frame := await socket.recv()):
        pass
    return str(frame)


async def test_the_socket_ignores_binary_frames_and_bad_json_without_answering(
    occupied: ClientConnection,
) -> None:
    await occupied.send(b'{"Request": {"id": "binary"}}')
    await occupied.send("not json")
    await occupied.send('{"Request": {"id": "bad", "request": {"Unknown": {}}}}')
    await occupied.send('{"Notification": {"StopRespondingTo": "nobody"}}')
    await occupied.send(socket_request("after", 4))

    # Nothing answers the garbage: the first frame not about the long request is for "after".
    frames = await frames_until(occupied, "after")
    assert frames == [{"Error": {"request_id": "after", "error": OVERFLOW}}]


async def test_a_socket_frame_over_50_mib_closes_the_socket_with_1009(cluster: Cluster) -> None:
    async with connect(cluster.b.inference_socket_url, max_size=None) as socket:
        with contextlib.suppress(ConnectionClosed):
            await socket.send("x" * (50 * 1024 * 1024 + 1))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(socket.recv(), 30)
        assert socket.close_code == 1009


async def test_a_real_agents_model_metadata_and_template_override(cluster: Cluster) -> None:
    (agent,) = cluster.agents_snapshot().agents
    base = f"{cluster.b.management_url}/api/v1/agent/{agent.id}"
    async with http_client() as client:
        metadata = await client.get(f"{base}/model_metadata")
        override = await client.get(f"{base}/chat_template_override")

    assert metadata.status_code == 200
    assert metadata.json()["metadata"]["general.architecture"] == "llama"
    assert "tokenizer.chat_template" in metadata.json()["metadata"]
    assert (override.status_code, override.json()) == (200, None)


async def test_the_body_limit_is_configurable(make_cluster: Callable[[str], Cluster]) -> None:
    balancer = make_cluster("small-bodies").start_balancer(
        "--max-request-body-bytes", "1000", "--buffered-request-timeout", "100"
    )
    async with http_client() as client:
        refused = await client.post(
            f"{balancer.inference_url}{RAW_PROMPT}", json=raw_prompt_body(4, "x" * 2000)
        )
        accepted = await client.post(
            f"{balancer.inference_url}{RAW_PROMPT}",
            json=raw_prompt_body(4, "short"),
            timeout=5,
        )
    assert refused.status_code == 413
    # Within the limit the request is taken (no agents: it waits, then times out in band).
    assert accepted.status_code == 200
    assert '"code":504' in accepted.text


async def test_a_refused_socket_embedding_batch_ends_with_its_done(cluster: Cluster) -> None:
    """Generation mode refuses embeddings (501); the stream still ends with the one Done."""
    async with connect(cluster.b.inference_socket_url) as socket:
        await socket.send(
            json.dumps(
                {
                    "Request": {
                        "id": "batch-1",
                        "request": {"GenerateEmbeddingBatch": embeddings_body()},
                    }
                }
            )
        )
        error = json.loads(await asyncio.wait_for(socket.recv(), 5))
        done = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert error == {
        "Error": {
            "request_id": "batch-1",
            "error": {
                "code": 501,
                "description": "Embedding generation is not enabled in the inference parameters",
            },
        }
    }
    assert done == {
        "Response": {
            "generated_by": None,
            "request_id": "batch-1",
            "response": {"Embedding": "Done"},
        }
    }
