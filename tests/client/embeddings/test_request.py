from __future__ import annotations

import pytest

from paddler_tui.client.embeddings.request import (
    EmbeddingInputError,
    batch_params,
    documents_from_text,
    method_label,
    normalization_method,
)
from paddler_tui.protocol.embedding import L2, NoNormalization, RmsNorm


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
