"""GenerateEmbeddingBatch through a real agent process in embeddings mode."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from paddler_tui.protocol.embedding import (
    L2,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    EmbeddingProduced,
    EmbeddingResult,
    NoEmbeddingsProduced,
    NoNormalization,
    RmsNorm,
)
from paddler_tui.protocol.envelope import GenerateEmbeddingBatch
from paddler_tui.protocol.generated_token import TokenGenerationDisabled
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from tests.agent.agent_session import AgentSession, agent_session, conversation, raw_prompt

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

N_BATCH = 64
HUGE = "This sentence repeats to make a document longer than one batch. " * 40
DOCUMENTS = [(f"doc-{n}", f"Document {n} is about the number {n}.") for n in range(12)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AgentSession]:
    tmp: Path = tmp_path_factory.mktemp("agent")
    async with agent_session(tmp) as running:
        await running.apply(enable_embeddings=True, pooling_type="Mean", n_batch=N_BATCH)
        yield running


def embeddings(results: list[EmbeddingResult]) -> dict[str, Embedding]:
    assert isinstance(results[-1], EmbeddingDone), results[-1]
    return {
        r.value.source_document_id: r.value for r in results if isinstance(r, EmbeddingProduced)
    }


async def test_twelve_documents_on_four_slots_give_twelve_unit_vectors(
    session: AgentSession,
) -> None:
    produced = embeddings(await session.embed(DOCUMENTS, L2()))
    assert sorted(produced) == sorted(document_id for document_id, _ in DOCUMENTS)
    assert {len(e.embedding) for e in produced.values()} == {576}
    for embedding in produced.values():
        assert abs(math.hypot(*embedding.embedding) - 1) < 1e-4
        assert (embedding.normalization_method, embedding.pooling_type) == (L2(), "Mean")
    await session.idle()


async def test_identical_documents_and_batch_position(session: AgentSession) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    twins = embeddings(await session.embed([("a", text), ("b", text)], L2()))
    assert twins["a"].embedding == twins["b"].embedding
    alone = embeddings(await session.embed([("x", text)], L2()))["x"].embedding
    crowd = embeddings(await session.embed([*DOCUMENTS[:7], ("x", text)], L2()))["x"].embedding
    assert max(abs(a - b) for a, b in zip(alone, crowd, strict=True)) < 1e-5


async def test_rms_norm_and_none_are_echoed_and_correct(session: AgentSession) -> None:
    document = [("doc", "Normalization check.")]
    raw = embeddings(await session.embed(document, NoNormalization()))["doc"]
    rms = embeddings(await session.embed(document, RmsNorm(epsilon=1e-6)))["doc"]
    unit = embeddings(await session.embed(document, L2()))["doc"]
    assert raw.normalization_method == NoNormalization()
    assert rms.normalization_method == RmsNorm(epsilon=1e-6)
    vector = raw.embedding
    scale = math.sqrt(sum(v * v for v in vector) / len(vector) + 1e-6)
    assert max(abs(v / scale - r) for v, r in zip(vector, rms.embedding, strict=True)) < 1e-5
    norm = math.hypot(*vector)
    assert max(abs(v / norm - u) for v, u in zip(vector, unit.embedding, strict=True)) < 1e-6


async def test_one_oversized_document_is_reported_and_the_rest_embedded(
    session: AgentSession,
) -> None:
    results = await session.embed([("tiny", "tiny"), ("huge", HUGE)], L2())
    oversized = [r for r in results if isinstance(r, DocumentExceedsBatchSize)]
    assert len(oversized) == 1
    assert (oversized[0].source_document_id, oversized[0].n_batch) == ("huge", N_BATCH)
    assert oversized[0].document_tokens > N_BATCH
    assert list(embeddings(results)) == ["tiny"]


async def test_only_oversized_documents_produce_no_embeddings(session: AgentSession) -> None:
    results = await session.embed([("one", HUGE), ("two", HUGE)], L2())
    assert [type(r) for r in results] == [
        DocumentExceedsBatchSize,
        DocumentExceedsBatchSize,
        NoEmbeddingsProduced,
    ]


async def test_concurrent_requests_each_get_their_own_documents(session: AgentSession) -> None:
    batches = [[(f"c{c}-d{d}", f"Client {c}, document {d}.") for d in range(3)] for c in range(4)]
    results = await asyncio.gather(*(session.embed(batch, L2()) for batch in batches))
    for batch, result in zip(batches, results, strict=True):
        assert sorted(embeddings(result)) == sorted(document_id for document_id, _ in batch)
    await session.idle()


async def test_a_stop_ends_the_batch_early(session: AgentSession) -> None:
    documents = [EmbeddingInputDocument(id=f"d{n}", content=f"Text {n}.") for n in range(400)]
    params = GenerateEmbeddingBatchParams(input_batch=documents, normalization_method=L2())
    endpoint, agent = session.endpoint, session.agent
    request_id = await endpoint.request(agent, GenerateEmbeddingBatch(value=params))
    await endpoint.next_response(agent, request_id)
    await endpoint.stop(agent, request_id)
    rest = await endpoint.embeddings(agent, request_id)
    assert isinstance(rest[-1], EmbeddingDone)
    assert len(rest) < 400
    await session.idle()


async def test_token_generation_is_disabled(session: AgentSession) -> None:
    for request in (raw_prompt("Hi", 5), conversation("Hi", max_tokens=5)):
        [result] = await session.generate(request)
        assert isinstance(result, TokenGenerationDisabled)
