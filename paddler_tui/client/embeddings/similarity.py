"""How alike the embeddings of one run are: vector norms and pairwise cosine similarities."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence


def vector_norm(vector: Sequence[float]) -> float:
    """The Euclidean (L2) length."""
    return math.sqrt(math.fsum(value * value for value in vector))


def cosine_similarity_matrix(vectors: Sequence[Sequence[float]]) -> list[list[float | None]]:
    """Pairwise cosine similarities; ``None`` where it is undefined (a zero vector, or
    vectors of different lengths, which happens when agents run different models)."""
    norms = [vector_norm(vector) for vector in vectors]
    matrix: list[list[float | None]] = [[None] * len(vectors) for _ in vectors]
    for row, (left, left_norm) in enumerate(zip(vectors, norms, strict=True)):
        for column in range(row, len(vectors)):
            right, right_norm = vectors[column], norms[column]
            if left_norm == 0.0 or right_norm == 0.0 or len(left) != len(right):
                continue
            dot = math.fsum(a * b for a, b in zip(left, right, strict=True))
            # Rounding can push |cos| a hair past 1, which would print as 1.00 anyway.
            similarity = max(-1.0, min(1.0, dot / (left_norm * right_norm)))
            matrix[row][column] = matrix[column][row] = similarity
    return matrix
