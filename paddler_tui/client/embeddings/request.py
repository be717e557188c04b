"""From what the user typed on the embeddings screen to a ``GenerateEmbeddingBatchParams``."""

from __future__ import annotations

import math
from typing import Literal

from paddler_tui.protocol.embedding import (
    L2,
    EmbeddingInputDocument,
    EmbeddingNormalizationMethod,
    NoNormalization,
    RmsNorm,
)
from paddler_tui.protocol.numbers import round_f32
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams

NormalizationKind = Literal["L2", "None", "RmsNorm"]
NORMALIZATION_KINDS: tuple[NormalizationKind, ...] = ("L2", "None", "RmsNorm")
DEFAULT_EPSILON = "1e-6"


class EmbeddingInputError(ValueError):
    """What the user typed cannot become a request; the message says what to change."""


def documents_from_text(text: str) -> list[str]:
    """One document per non-blank line, surrounding whitespace trimmed."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def normalization_method(
    kind: NormalizationKind, epsilon_text: str
) -> EmbeddingNormalizationMethod:
    if kind == "L2":
        return L2()
    if kind == "None":
        return NoNormalization()
    try:
        epsilon = float(epsilon_text)
    except ValueError:
        raise EmbeddingInputError(f"epsilon must be a number, got {epsilon_text!r}") from None
    # A negative epsilon can make the RMS imaginary; the agent would return NaNs.
    if not math.isfinite(epsilon) or epsilon < 0:
        raise EmbeddingInputError("epsilon must be a finite number of at least 0")
    try:
        return RmsNorm(epsilon=round_f32(epsilon))
    except ValueError as error:
        raise EmbeddingInputError(f"epsilon: {error}") from None


def batch_params(
    documents: list[str], method: EmbeddingNormalizationMethod
) -> GenerateEmbeddingBatchParams:
    """Documents numbered from 1, so the table and the heat map can label them briefly."""
    if not documents:
        raise EmbeddingInputError("type at least one document (one per line) or load a file")
    return GenerateEmbeddingBatchParams(
        input_batch=[
            EmbeddingInputDocument(content=content, id=str(number))
            for number, content in enumerate(documents, start=1)
        ],
        normalization_method=method,
    )


def method_label(method: EmbeddingNormalizationMethod) -> str:
    if isinstance(method, RmsNorm):
        return f"RmsNorm (epsilon {method.epsilon:g})"
    return method.TAG
