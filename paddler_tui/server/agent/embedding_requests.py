"""GenerateEmbeddingBatch on the agent: one engine embedding job, streamed as EmbeddingResults."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from paddler_tui.protocol.embedding import (
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingNormalizationMethod,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
    is_terminal,
    normalize,
)
from paddler_tui.server.agent.engine.types import (
    DocumentEmbedded,
    DocumentTooLong,
    EmbeddingJob,
    EmbeddingsFinished,
    EngineEvent,
    JobFailed,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from paddler_tui.protocol.inference_parameters import PoolingType
    from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
    from paddler_tui.server.agent.engine.engine import Engine


def embedding_result(
    document_id: str,
    vector: list[float],
    method: EmbeddingNormalizationMethod,
    pooling_type: PoolingType,
) -> EmbeddingResult:
    """The Embedding message of one document, or the error normalizing it raised."""
    try:
        normalized = normalize(vector, method)
    except ValueError as error:
        return EmbeddingError(value=str(error))
    return EmbeddingProduced(
        value=Embedding(
            embedding=normalized,
            normalization_method=method,
            pooling_type=pooling_type,
            source_document_id=document_id,
        )
    )


def event_result(
    event: EngineEvent, method: EmbeddingNormalizationMethod, pooling_type: PoolingType
) -> EmbeddingResult:
    """The EmbeddingResult an engine event of an embedding job becomes."""
    if isinstance(event, DocumentEmbedded):
        return embedding_result(event.document_id, event.vector, method, pooling_type)
    if isinstance(event, DocumentTooLong):
        return DocumentExceedsBatchSize(
            document_tokens=event.tokens,
            n_batch=event.n_batch,
            source_document_id=event.document_id,
        )
    if isinstance(event, EmbeddingsFinished):
        return EmbeddingDone() if event.embedded else NoEmbeddingsProduced()
    assert isinstance(event, JobFailed), event  # generation events never come here
    if event.kind == "embeddings_disabled":
        return EmbeddingsDisabled()
    if event.kind == "generation_active":
        return EmbeddingRejectedDueToActiveTokenGeneration()
    return EmbeddingError(value=event.message)


async def serve_embeddings(
    engine: Engine,
    request_id: str,
    params: GenerateEmbeddingBatchParams,
    pooling_type: PoolingType,
    respond: Callable[[EmbeddingResult], None],
) -> None:
    ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def sink(event: EngineEvent) -> None:  # on the event loop, where the agent's engine delivers
        if ended.done():
            return  # the job was ended early, after a document failed to normalize
        result = event_result(event, params.normalization_method, pooling_type)
        respond(result)
        if is_terminal(result):
            # A no-op once the job ended; ends it when a document failed to normalize.
            engine.stop(request_id)
            ended.set_result(None)

    documents = [(document.id, document.content) for document in params.input_batch]
    engine.submit(EmbeddingJob(job_id=request_id, documents=documents), sink)
    await ended
