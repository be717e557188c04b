"""Embedding inputs, results and the normalization methods the agent applies."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated

from paddler_tui.protocol.inference_parameters import PoolingType
from paddler_tui.protocol.numbers import F32, U32
from paddler_tui.protocol.wire import (
    ExternallyTagged,
    NewtypeVariant,
    StructVariant,
    UnitVariant,
    WireModel,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

# Rust converts the length to u16 before dividing, so longer vectors cannot be RMS-normalized.
RMS_NORM_MAX_LENGTH = 65535


class EmbeddingInputDocument(WireModel):
    content: str
    id: str


class L2(UnitVariant):
    pass


class NoNormalization(UnitVariant):
    TAG = "None"


class RmsNorm(StructVariant):
    epsilon: F32


EmbeddingNormalizationMethod = Annotated[L2 | NoNormalization | RmsNorm, ExternallyTagged()]


class Embedding(WireModel):
    embedding: list[float]
    normalization_method: EmbeddingNormalizationMethod
    pooling_type: PoolingType
    source_document_id: str


class DocumentExceedsBatchSize(StructVariant):
    document_tokens: U32
    n_batch: U32
    source_document_id: str


class EmbeddingDone(UnitVariant):
    TAG = "Done"


class EmbeddingProduced(NewtypeVariant):
    """The ``Embedding`` variant; renamed because the payload struct is :class:`Embedding`."""

    TAG = "Embedding"
    value: Embedding


class EmbeddingsDisabled(UnitVariant):
    pass


class EmbeddingError(NewtypeVariant):
    TAG = "Error"
    value: str


class EmbeddingRejectedDueToActiveTokenGeneration(UnitVariant):
    pass


class NoEmbeddingsProduced(UnitVariant):
    pass


EmbeddingResult = Annotated[
    DocumentExceedsBatchSize
    | EmbeddingDone
    | EmbeddingProduced
    | EmbeddingsDisabled
    | EmbeddingError
    | EmbeddingRejectedDueToActiveTokenGeneration
    | NoEmbeddingsProduced,
    ExternallyTagged(),
]


def is_terminal(result: EmbeddingResult) -> bool:
    """Only produced embeddings and oversized-document notices leave the stream open."""
    return not isinstance(result, EmbeddingProduced | DocumentExceedsBatchSize)


def normalize(vector: Sequence[float], method: EmbeddingNormalizationMethod) -> list[float]:
    """Apply ``method`` as the agent does; raise ``ValueError`` for an over-long RMS vector."""
    if isinstance(method, L2):
        magnitude = math.sqrt(math.fsum(value * value for value in vector))
        if magnitude == 0.0:
            return [0.0] * len(vector)
        return [value / magnitude for value in vector]
    if isinstance(method, RmsNorm):
        if not vector:
            return []
        if len(vector) > RMS_NORM_MAX_LENGTH:
            raise ValueError("embedding length exceeds the supported maximum for normalization")
        mean_square = math.fsum(value * value for value in vector) / len(vector)
        rms = math.sqrt(mean_square + method.epsilon)
        if rms == 0.0:
            return [0.0] * len(vector)
        return [value / rms for value in vector]
    return list(vector)
