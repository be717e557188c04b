from __future__ import annotations

import math

import pytest

from paddler_tui.protocol.embedding import L2, NoNormalization, RmsNorm
from paddler_tui.ui.embedding_math import (
    contrasting_text,
    cosine_similarity_matrix,
    format_values,
    heat_colour,
    vector_norm,
)
from paddler_tui.ui.embedding_request import (
    EmbeddingInputError,
    batch_params,
    documents_from_text,
    method_label,
    normalization_method,
)


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


def test_heat_colour_runs_dark_to_bright_and_clamps() -> None:
    assert heat_colour(-0.5) == heat_colour(0.0) == (68, 1, 84)
    assert heat_colour(1.0) == heat_colour(2.0) == (253, 231, 37)
    assert heat_colour(0.125) == (64, 42, 112)  # halfway between the first two stops
    assert contrasting_text(heat_colour(0.0)) == (255, 255, 255)
    assert contrasting_text(heat_colour(1.0)) == (0, 0, 0)


def test_format_values_shows_an_ellipsis_when_cut() -> None:
    assert format_values([0.5, -0.25], 3) == "+0.500, -0.250"
    assert format_values([0.5, -0.25, 1.0], 2) == "+0.500, -0.250, …"


def test_documents_are_non_blank_lines() -> None:
    assert documents_from_text("  a cat \n\n\tdog\n   \n") == ["a cat", "dog"]


def test_batch_numbers_documents_from_one() -> None:
    params = batch_params(["a", "b"], L2())
    assert [(d.id, d.content) for d in params.input_batch] == [("1", "a"), ("2", "b")]
    with pytest.raises(EmbeddingInputError, match="at least one document"):
        batch_params([], L2())


def test_normalization_methods() -> None:
    assert normalization_method("L2", "") == L2()
    assert normalization_method("None", "junk") == NoNormalization()
    assert normalization_method("RmsNorm", "1e-5") == RmsNorm(epsilon=1e-5)
    assert method_label(RmsNorm(epsilon=1e-5)) == "RmsNorm (epsilon 1e-05)"
    assert method_label(NoNormalization()) == "None"


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "inf", "1e400"])
def test_bad_epsilon_is_explained(text: str) -> None:
    with pytest.raises(EmbeddingInputError, match="epsilon"):
        normalization_method("RmsNorm", text)
