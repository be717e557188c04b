from __future__ import annotations

import math

import pytest

from paddler_tui.client.embeddings.similarity import cosine_similarity_matrix, vector_norm


def test_norm_is_euclidean_length() -> None:
    assert vector_norm([3.0, 4.0]) == 5.0
    assert vector_norm([]) == 0.0


def test_cosine_matrix_is_symmetric_with_unit_diagonal() -> None:
    matrix = cosine_similarity_matrix([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    assert [matrix[i][i] for i in range(3)] == pytest.approx([1.0, 1.0, 1.0])
    assert matrix[0][1] == matrix[1][0] == pytest.approx(1 / math.sqrt(2))
    assert matrix[0][2] == -1.0


def test_cosine_is_undefined_for_zero_vectors_and_mixed_dimensions() -> None:
    matrix = cosine_similarity_matrix([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0, 0.0]])
    assert matrix[0] == [None, None, None]
    assert matrix[1][2] is None
    assert matrix[2][2] == 1.0


def test_cosine_is_clamped_against_rounding() -> None:
    vector = [0.1] * 7
    assert cosine_similarity_matrix([vector, vector])[0][1] == 1.0
