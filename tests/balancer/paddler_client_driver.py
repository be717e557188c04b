"""Drives a balancer with Paddler's own Python client (``paddler-client`` 4.0.0 from PyPI).

Run by ``test_paddler_client.py`` with the interpreter of a separate virtualenv: the client pins
``websockets<16``, which cannot live in the project's environment. This file imports only the
client and the standard library, never ``paddler_tui``.

It checks what the client's own integration tests check against a live Paddler (health, agents,
desired state, buffered requests, metrics, conversation history over HTTP and the inference
socket, raw prompt over the socket, embeddings), written here from their behaviour. Each check
that passes is printed; the test compares the list, so a check that silently did not run fails.

Usage: python paddler_client_driver.py INFERENCE_URL MANAGEMENT_URL AGENT_NAME SLOTS
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator

from paddler_client.balancer_desired_state import BalancerDesiredState
from paddler_client.client_inference import ClientInference
from paddler_client.client_management import ClientManagement
from paddler_client.continue_from_conversation_history_params import (
    ContinueFromConversationHistoryParams,
)
from paddler_client.continue_from_raw_prompt_params import ContinueFromRawPromptParams
from paddler_client.conversation_message import ConversationMessage
from paddler_client.embedding_input_document import EmbeddingInputDocument
from paddler_client.embedding_normalization_method import EmbeddingNormalizationMethod
from paddler_client.generate_embedding_batch_params import GenerateEmbeddingBatchParams
from paddler_client.inference_message import InferenceMessage, InferenceMessageKind

CHECKED: list[str] = []
FAILURE_KINDS = {
    InferenceMessageKind.TIMEOUT,
    InferenceMessageKind.TOO_MANY_BUFFERED_REQUESTS,
    InferenceMessageKind.SERVER_ERROR,
    InferenceMessageKind.CHAT_TEMPLATE_ERROR,
    InferenceMessageKind.GRAMMAR_INITIALIZATION_FAILED,
    InferenceMessageKind.GRAMMAR_SYNTAX_ERROR,
    InferenceMessageKind.IMAGE_DECODING_FAILED,
    InferenceMessageKind.SAMPLER_ERROR,
}


def passed(name: str) -> None:
    CHECKED.append(name)
    print(f"ok: {name}", file=sys.stderr, flush=True)


async def content_of(messages: AsyncIterator[InferenceMessage], agent_name: str) -> str:
    """The generated text of a token stream, which must end with Done from ``agent_name``."""
    tokens: list[str] = []
    async for message in messages:
        assert message.kind not in FAILURE_KINDS, message
        assert message.generated_by == agent_name, message
        if message.kind == InferenceMessageKind.CONTENT_TOKEN:
            assert message.token is not None
            tokens.append(message.token)
        elif message.is_terminal:
            assert message.kind == InferenceMessageKind.DONE, message
            assert message.summary is not None
            assert message.summary.usage.content_tokens == len(tokens)
            break
    assert tokens, "no content tokens"
    return "".join(tokens)


async def check_management(management: ClientManagement, agent_name: str, slots: int) -> str:
    assert await management.get_health() == "OK"
    passed("management health")

    pool = await management.get_agents()
    (agent,) = pool.agents
    assert agent.id
    assert agent.name == agent_name
    assert (agent.slots_total, agent.slots_processing) == (slots, 0)
    assert agent.state_application_status.value == "Applied"
    assert not agent.issues
    passed("agents")

    async for snapshot in management.agents_stream():
        assert [a.id for a in snapshot.agents] == [agent.id]
        break
    passed("agents stream")

    original = await management.get_balancer_desired_state()
    assert original.model.variant == "LocalToAgent"
    assert original.inference_parameters.temperature == 0
    await management.put_balancer_desired_state(original)
    assert await management.get_balancer_desired_state() == original
    passed("desired state round trip")

    assert (await management.get_buffered_requests()).buffered_requests_current == 0
    async for buffered in management.buffered_requests_stream():
        assert buffered.buffered_requests_current == 0
        break
    passed("buffered requests")

    metrics = await management.get_metrics()
    assert f"paddler_slots_total {slots}" in metrics.splitlines()
    passed("metrics")

    metadata = await management.get_model_metadata(agent.id)
    assert metadata is not None
    assert metadata.metadata["general.architecture"] == "llama"
    assert await management.get_chat_template_override(agent.id) is None
    passed("agent proxy routes")
    return str(agent.id)


async def check_inference(inference: ClientInference, agent_name: str) -> None:
    assert await inference.get_health() == "OK"
    passed("inference health")

    conversation = ContinueFromConversationHistoryParams(
        add_generation_prompt=True,
        conversation_history=[ConversationMessage(content="Say hello.", role="user")],
        enable_thinking=False,
        max_tokens=16,
    )
    over_http = await content_of(
        inference.post_continue_from_conversation_history(conversation), agent_name
    )
    passed("conversation history over HTTP")

    over_socket = await content_of(
        await inference.continue_from_conversation_history(conversation), agent_name
    )
    # Greedy sampling: both protocols reach the same agent code with the same prompt.
    assert over_socket == over_http, (over_socket, over_http)
    passed("conversation history over the inference socket")

    raw = ContinueFromRawPromptParams(max_tokens=16, raw_prompt="The meaning of life is")
    await content_of(await inference.continue_from_raw_prompt(raw), agent_name)
    passed("raw prompt over the inference socket")


async def switch_to_embeddings(management: ClientManagement, agent_id: str, slots: int) -> None:
    """PUT an embeddings state and wait (on the agents stream) until the agent reloaded."""
    current = await management.get_balancer_desired_state()
    embeddings = BalancerDesiredState(
        chat_template_override=current.chat_template_override,
        inference_parameters=current.inference_parameters.model_copy(
            update={"enable_embeddings": True}
        ),
        model=current.model,
        multimodal_projection=current.multimodal_projection,
        use_chat_template_override=current.use_chat_template_override,
    )
    stream = management.agents_stream()
    await anext(stream)  # subscribed before the PUT, so the reload cannot be missed
    await management.put_balancer_desired_state(embeddings)
    unloaded = False
    async with asyncio.timeout(60):
        async for snapshot in stream:
            (agent,) = snapshot.agents
            assert agent.id == agent_id
            unloaded = unloaded or agent.slots_total == 0
            if unloaded and agent.slots_total == slots:
                break
    await stream.aclose()


async def check_embeddings(inference: ClientInference, agent_name: str) -> None:
    documents = ["first", "second", "third"]
    params = GenerateEmbeddingBatchParams(
        input_batch=[EmbeddingInputDocument(content=f"Document {d}", id=d) for d in documents],
        normalization_method=EmbeddingNormalizationMethod.l2(),
    )
    messages = [message async for message in inference.generate_embedding_batch(params)]
    embedded = sorted(
        m.embedding_data.source_document_id
        for m in messages
        if m.kind == InferenceMessageKind.EMBEDDING and m.embedding_data is not None
    )
    assert embedded == sorted(documents), messages
    assert {m.generated_by for m in messages[:-1]} == {agent_name}
    assert messages[-1].kind == InferenceMessageKind.EMBEDDING_DONE
    assert [m.kind for m in messages].count(InferenceMessageKind.EMBEDDING_DONE) == 1
    passed("embeddings")


async def main(inference_url: str, management_url: str, agent_name: str, slots: int) -> None:
    async with (
        ClientManagement(url=management_url) as management,
        ClientInference(url=inference_url) as inference,
    ):
        agent_id = await check_management(management, agent_name, slots)
        await check_inference(inference, agent_name)
        await switch_to_embeddings(management, agent_id, slots)
        await check_embeddings(inference, agent_name)
    print(json.dumps(CHECKED))


if __name__ == "__main__":
    inference_url, management_url, agent_name, slots = sys.argv[1:]
    asyncio.run(main(inference_url, management_url, agent_name, int(slots)))
