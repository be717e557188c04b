"""Embedding normalization and stream termination."""

from __future__ import annotations

import math

import pytest

from paddler_tui.protocol.embedding import (
    L2,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
    NoNormalization,
    RmsNorm,
    is_terminal,
    normalize,
)


def test_l2_gives_unit_norm() -> None:
    result = normalize([3.0, 4.0], L2())
    assert result == pytest.approx([0.6, 0.8])
    assert math.hypot(*normalize([1.0, -2.0, 0.5, 7.0], L2())) == pytest.approx(1.0)


def test_l2_keeps_zero_vector_zero() -> None:
    assert normalize([0.0, 0.0, 0.0], L2()) == [0.0, 0.0, 0.0]


def test_rms_norm_formula() -> None:
    vector = [1.0, 2.0, 3.0, 4.0]
    epsilon = 0.001
    rms = math.sqrt(sum(v * v for v in vector) / len(vector) + epsilon)
    assert normalize(vector, RmsNorm(epsilon=epsilon)) == pytest.approx([v / rms for v in vector])


def test_rms_norm_edge_cases() -> None:
    assert normalize([], RmsNorm(epsilon=0.0)) == []
    assert normalize([0.0, 0.0], RmsNorm(epsilon=0.0)) == [0.0, 0.0]
    assert len(normalize([1.0] * 65535, RmsNorm(epsilon=0.0))) == 65535
    with pytest.raises(ValueError, match="exceeds the supported maximum"):
        normalize([1.0] * 65536, RmsNorm(epsilon=0.0))


def test_none_leaves_vector_unchanged() -> None:
    vector = [3.0, 4.0, -1.5]
    result = normalize(vector, NoNormalization())
    assert result == vector
    assert result is not vector


def test_rms_norm_epsilon_is_an_f32() -> None:
    assert RmsNorm(epsilon=0.1).epsilon == 0.1
    # 0.123456789 is not an f32; serde keeps the nearest one and prints it shortest.
    assert RmsNorm(epsilon=0.123456789).epsilon == 0.12345679


def test_terminal_embedding_results() -> None:
    embedding = Embedding(
        embedding=[1.0],
        normalization_method=L2(),
        pooling_type="Last",
        source_document_id="d",
    )
    assert not is_terminal(EmbeddingProduced(value=embedding))
    assert not is_terminal(
        DocumentExceedsBatchSize(document_tokens=5, n_batch=4, source_document_id="d")
    )
    for result in (
        EmbeddingDone(),
        EmbeddingsDisabled(),
        EmbeddingError(value="x"),
        EmbeddingRejectedDueToActiveTokenGeneration(),
        NoEmbeddingsProduced(),
    ):
        assert is_terminal(result)
