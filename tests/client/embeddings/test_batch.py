from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TypedDict, Unpack

import pytest

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.embeddings.batch import (
    ChunkFailed,
    DocumentTooLarge,
    Produced,
    Rejected,
    RunEvent,
    TransportChosen,
    run_embedding_batch,
    translate,
)
from paddler_tui.client.embeddings.request import batch_params
from paddler_tui.client.embeddings.results import EXPORT_FORMAT, EmbeddingRun
from paddler_tui.client.errors import BalancerUnreachableError
from paddler_tui.protocol.embedding import (
    L2,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
    RmsNorm,
)
from paddler_tui.protocol.envelope import EmbeddingResponse, ErrorDetails, ErrorEnvelope
from paddler_tui.protocol.inference_socket import ResponseEnvelope
from tests.support.fake_balancer import FakeBalancer, FakeScript, desired_state

DOCUMENTS = ["the cat sat", "a dog ran", "the cat sat", "stocks fell", "bananas"]


@pytest.fixture
def fake() -> Iterator[FakeBalancer]:
    """A fake balancer with two agents and embeddings on."""
    with FakeBalancer(FakeScript(desired_state=desired_state(enable_embeddings=True))) as running:
        yield running


@pytest.fixture
async def services(fake: FakeBalancer) -> AsyncIterator[BalancerServices]:
    services = BalancerServices(fake.inference_addr, fake.management_addr)
    yield services
    await services.aclose()


class RunOptions(TypedDict, total=False):
    use_socket: bool
    first_reply_timeout_s: float


async def collect(services: BalancerServices, **options: Unpack[RunOptions]) -> list[RunEvent]:
    params = batch_params(DOCUMENTS, L2())
    return [event async for event in run_embedding_batch(services, params, **options)]


def error(code: int, description: str) -> ErrorEnvelope:
    return ErrorEnvelope(request_id="r", error=ErrorDetails(code=code, description=description))


def result(value: EmbeddingResult) -> ResponseEnvelope:
    return ResponseEnvelope(request_id="r", response=EmbeddingResponse(value=value))


def test_translate() -> None:
    embedding = Embedding(
        embedding=[1.0], normalization_method=L2(), pooling_type="Last", source_document_id="1"
    )
    produced = ResponseEnvelope(
        generated_by="alpha",
        request_id="r",
        response=EmbeddingResponse(value=EmbeddingProduced(value=embedding)),
    )
    assert translate(produced) == Produced(embedding, "alpha")
    assert translate(result(EmbeddingDone())) is None
    assert translate(
        result(DocumentExceedsBatchSize(document_tokens=900, n_batch=512, source_document_id="3"))
    ) == DocumentTooLarge("3", 900, 512)
    assert translate(result(EmbeddingError(value="boom"))) == ChunkFailed("agent error: boom")
    assert isinstance(translate(result(EmbeddingsDisabled())), ChunkFailed)
    assert isinstance(translate(result(EmbeddingRejectedDueToActiveTokenGeneration())), ChunkFailed)
    assert isinstance(translate(result(NoEmbeddingsProduced())), ChunkFailed)
    # Refusals of the whole batch end it; a failed chunk does not.
    assert translate(error(501, "disabled")) == Rejected(501, "disabled")
    assert translate(error(400, "duplicate id")) == Rejected(400, "duplicate id")
    assert translate(error(503, "No agents are currently connected")) == Rejected(
        503, "No agents are currently connected"
    )
    assert translate(error(503, "Buffered requests overflow")) == ChunkFailed(
        "Buffered requests overflow", 503
    )
    assert translate(error(502, "Agent controller connection closed")) == ChunkFailed(
        "Agent controller connection closed", 502
    )


async def test_a_batch_over_the_socket(services: BalancerServices, fake: FakeBalancer) -> None:
    events = await collect(services)
    assert events[0] == TransportChosen("socket")
    produced = [event for event in events[1:] if isinstance(event, Produced)]
    assert [event.embedding.source_document_id for event in produced] == ["1", "2", "3", "4", "5"]
    assert [event.generated_by for event in produced] == ["alpha", "beta"] * 2 + ["alpha"]
    assert [transport for transport, _ in fake.embedding_requests] == ["socket"]


async def test_a_silent_socket_falls_back_to_http(
    services: BalancerServices, fake: FakeBalancer
) -> None:
    fake.script.socket_embeddings = False  # as Paddler: the request is dropped
    events = await collect(services, first_reply_timeout_s=0.2)
    assert isinstance(events[0], TransportChosen)
    assert (events[0].transport, "Paddler" in events[0].reason) == ("http", True)
    assert sum(isinstance(event, Produced) for event in events) == 5
    assert [transport for transport, _ in fake.embedding_requests] == ["socket", "http"]


async def test_501_over_either_route(services: BalancerServices, fake: FakeBalancer) -> None:
    fake.script.desired_state = fake.script.desired_state.model_copy(
        update={
            "inference_parameters": fake.script.desired_state.inference_parameters.model_copy(
                update={"enable_embeddings": False}
            )
        }
    )
    for use_socket in (True, False):
        events = await collect(services, use_socket=use_socket)
        assert isinstance(events[-1], Rejected)
        assert events[-1].status == 501


async def test_an_unreachable_balancer_raises() -> None:
    services = BalancerServices("127.0.0.1:9", "127.0.0.1:9")
    try:
        with pytest.raises(BalancerUnreachableError):
            await collect(services)
        with pytest.raises(BalancerUnreachableError):
            await collect(services, use_socket=False)
    finally:
        await services.aclose()


async def test_run_records_rows_problems_timing_and_export(services: BalancerServices) -> None:
    params = batch_params(DOCUMENTS, RmsNorm(epsilon=1e-6))
    run = EmbeddingRun(params, started_at=10.0)
    async for event in run_embedding_batch(services, params):
        run.apply(event)
    run.apply(DocumentTooLarge("9", 900, 512))
    run.apply(ChunkFailed("Agent controller connection closed", 502))
    assert run.state == "running"
    run.finish(12.0)
    assert (run.running, run.state) == (False, "done")
    assert (run.elapsed(99.0), run.documents_per_second(99.0)) == (2.0, 2.5)
    assert [row.content for row in run.ordered_rows()] == DOCUMENTS
    assert run.problems == [
        "document 9 has 900 tokens, more than n_batch 512: shorten it or raise n_batch on the "
        "cluster screen",
        "502 Agent controller connection closed",
    ]
    ids, matrix = run.similarity()
    assert ids == ["1", "2", "3", "4", "5"]
    assert matrix[0][0] == pytest.approx(1.0)
    assert matrix[0][2] == pytest.approx(1.0)  # the same text
    exported = json.loads(json.dumps(run.export()))
    assert exported["format"] == EXPORT_FORMAT
    assert exported["normalization_method"] == {"RmsNorm": {"epsilon": 1e-6}}
    assert (exported["transport"], exported["elapsed_seconds"]) == ("socket", 2.0)
    assert [document["id"] for document in exported["documents"]] == ids
    assert exported["documents"][1]["generated_by"] == "beta"
    assert len(exported["documents"][0]["embedding"]) == 8
    assert exported["cosine_similarity"]["ids"] == ids
    assert len(exported["problems"]) == 2


def test_an_empty_run_has_no_rate() -> None:
    run = EmbeddingRun(batch_params(["a"], L2()), started_at=1.0)
    assert run.running
    assert run.documents_per_second(1.0) is None
    assert run.export()["elapsed_seconds"] is None
    run.apply(Rejected(501, "off"))
    assert run.rejected == Rejected(501, "off")
