"""Embedding batches: the chunking formula of spec §3.5 and the merge of the chunks' streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import pytest

from paddler_tui.protocol.embedding import (
    L2,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    EmbeddingProduced,
)
from paddler_tui.protocol.envelope import EmbeddingResponse, ErrorEnvelope, GenerateEmbeddingBatch
from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from paddler_tui.server.balancer.embedding_batch import embed_batch, split_documents
from tests.balancer.pool_fakes import RecordingSend, dispatch, make_agent


@pytest.mark.parametrize(
    ("documents", "agents", "batch_size", "sizes"),
    [
        (11, 4, 256, [3, 3, 3, 2]),
        (2000, 4, 256, [250] * 8),
        (1100, 4, 256, [220] * 5),
        (1000, 4, 100, [100] * 10),
        (3, 4, 256, [1, 1, 1]),
        (5, 0, 2, [2, 2, 1]),
        (0, 4, 256, []),
    ],
)
def test_chunks_follow_paddlers_formula_in_document_order(
    documents: int, agents: int, batch_size: int, sizes: list[int]
) -> None:
    chunks = split_documents(list(range(documents)), agents=agents, batch_size=batch_size)

    assert [len(chunk) for chunk in chunks] == sizes
    assert [d for chunk in chunks for d in chunk] == list(range(documents))


def params(count: int) -> GenerateEmbeddingBatchParams:
    return GenerateEmbeddingBatchParams(
        input_batch=[EmbeddingInputDocument(id=f"d{i}", content="x") for i in range(count)],
        normalization_method=L2(),
    )


def embedding(document_id: str) -> EmbeddingResponse:
    return EmbeddingResponse(
        value=EmbeddingProduced(
            value=Embedding(
                embedding=[1.0],
                normalization_method=L2(),
                pooling_type="Last",
                source_document_id=document_id,
            )
        )
    )


async def collect(
    stream: AsyncGenerator[InferenceServerMessage, None],
) -> list[InferenceServerMessage]:
    async with contextlib.aclosing(stream) as messages:
        return [message async for message in messages]


def source_document_id(message: InferenceServerMessage) -> str:
    assert isinstance(message, ResponseEnvelope)
    assert isinstance(message.response, EmbeddingResponse)
    assert isinstance(message.response.value, EmbeddingProduced)
    return message.response.value.value.source_document_id


async def test_chunks_run_on_every_agent_and_end_with_a_single_done() -> None:
    async with dispatch() as d:
        agents = [make_agent(name, slots=1) for name in ("a", "b")]
        for agent, _ in agents:
            d.pool.register(agent)
        merged = asyncio.create_task(
            collect(embed_batch(d.forwarder, params(3), agents=2, batch_size=256))
        )
        for agent, send in agents:

            def one_request(send: RecordingSend = send) -> bool:
                return len(send.requests()) == 1

            await send.wait_for(one_request)
            (request,) = send.requests()
            assert isinstance(request.request, GenerateEmbeddingBatch)
            for document in request.request.value.input_batch:
                agent.deliver(request.id, embedding(document.id))
            agent.deliver(request.id, EmbeddingResponse(value=EmbeddingDone()))
        messages = await merged

    requests = [s.requests()[0].request for _, s in agents]
    sent = [
        [doc.id for doc in r.value.input_batch]
        for r in requests
        if isinstance(r, GenerateEmbeddingBatch)
    ]
    assert sorted(sent) == [["d0", "d1"], ["d2"]]
    *results, final = messages
    responses = [m for m in results if isinstance(m, ResponseEnvelope)]
    assert responses == results
    assert sorted(source_document_id(m) for m in responses) == ["d0", "d1", "d2"]
    assert {m.generated_by for m in responses} == {"a", "b"}
    assert isinstance(final, ResponseEnvelope)
    assert (final.generated_by, final.response) == (None, EmbeddingResponse(value=EmbeddingDone()))
    assert final.request_id not in {m.request_id for m in responses}


async def test_a_chunks_error_is_forwarded_and_the_batch_still_ends_with_done() -> None:
    async with dispatch(max_buffered=0) as d:
        agent, send = make_agent("only", slots=1)
        d.pool.register(agent)
        merged = asyncio.create_task(
            collect(
                embed_batch(
                    d.forwarder, params(2), agents=2, batch_size=256, final_request_id="mine"
                )
            )
        )
        await send.wait_for(lambda: len(send.requests()) == 1)
        (request,) = send.requests()
        agent.deliver(request.id, embedding("d0"))
        agent.deliver(request.id, EmbeddingResponse(value=EmbeddingDone()))
        messages = await merged

    errors = [m for m in messages if isinstance(m, ErrorEnvelope)]
    assert [(e.error.code, e.error.description) for e in errors] == [
        (503, "Buffered requests overflow")
    ]
    assert messages[-1] == ResponseEnvelope(
        generated_by=None, request_id="mine", response=EmbeddingResponse(value=EmbeddingDone())
    )
    assert len(messages) == 3
