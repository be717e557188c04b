"""Engine events of an embedding job, and normalized vectors, as EmbeddingResult messages."""

from __future__ import annotations

import pytest

from paddler_tui.protocol.embedding import (
    L2,
    DocumentExceedsBatchSize,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
    RmsNorm,
)
from paddler_tui.server.agent.embedding_requests import embedding_result, event_result
from paddler_tui.server.agent.engine.types import (
    DocumentTooLong,
    EmbeddingsFinished,
    EngineEvent,
    JobFailed,
)


def test_a_normalized_embedding_message() -> None:
    result = embedding_result("doc", [3.0, 4.0], L2(), "Mean")
    assert isinstance(result, EmbeddingProduced)
    assert result.value.embedding == [0.6, 0.8]
    assert (result.value.source_document_id, result.value.pooling_type) == ("doc", "Mean")
    assert result.value.normalization_method == L2()


def test_a_vector_too_long_for_rms_norm_is_an_embedding_error() -> None:
    result = embedding_result("doc", [1.0] * 70_000, RmsNorm(epsilon=1e-6), "Last")
    assert result == EmbeddingError(
        value="embedding length exceeds the supported maximum for normalization"
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            DocumentTooLong("job", "doc", 70, 64),
            DocumentExceedsBatchSize(document_tokens=70, n_batch=64, source_document_id="doc"),
        ),
        (EmbeddingsFinished("job", 3), EmbeddingDone()),
        (EmbeddingsFinished("job", 0), NoEmbeddingsProduced()),
        (JobFailed("job", "embeddings_disabled", "off"), EmbeddingsDisabled()),
        (
            JobFailed("job", "generation_active", "busy"),
            EmbeddingRejectedDueToActiveTokenGeneration(),
        ),
        (JobFailed("job", "internal", "boom"), EmbeddingError(value="boom")),
    ],
)
def test_engine_events_become_embedding_results(
    event: EngineEvent, expected: EmbeddingResult
) -> None:
    assert event_result(event, L2(), "Mean") == expected
