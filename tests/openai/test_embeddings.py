"""Embeddings: request mapping and collecting a batch into OpenAI's answer (no sockets)."""

from __future__ import annotations

import base64
import struct

import pytest

from paddler_tui.protocol.embedding import (
    L2,
    DocumentExceedsBatchSize,
    Embedding,
    EmbeddingDone,
    EmbeddingInputDocument,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
)
from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope
from paddler_tui.protocol.generated_token import ContentToken
from paddler_tui.server.balancer.inference_requests import EMBEDDINGS_DISABLED
from paddler_tui.server.balancer.openai.embeddings import (
    EmbeddingsResult,
    embedding_batch_params,
    embedding_inputs,
    encode_vector,
)
from paddler_tui.server.balancer.openai.errors import OpenAIError
from paddler_tui.server.balancer.openai.models import EmbeddingsRequest
from paddler_tui.server.balancer.request_errors import BUFFER_TIMEOUT
from tests.openai.messages import embedding, token


def produced(index: int, vector: list[float]) -> EmbeddingProduced:
    return EmbeddingProduced(
        value=Embedding(
            embedding=vector,
            normalization_method=L2(),
            pooling_type="Last",
            source_document_id=str(index),
        )
    )


def test_inputs_become_documents_named_by_index() -> None:
    inputs = embedding_inputs(EmbeddingsRequest(model="m", input=["a", "b"]))
    params = embedding_batch_params(inputs)
    assert params.input_batch == [
        EmbeddingInputDocument(content="a", id="0"),
        EmbeddingInputDocument(content="b", id="1"),
    ]
    assert params.normalization_method == L2()
    assert embedding_inputs(EmbeddingsRequest(model="m", input="one")) == ["one"]


def test_empty_input_is_invalid() -> None:
    with pytest.raises(OpenAIError) as raised:
        embedding_inputs(EmbeddingsRequest(model="m", input=[]))
    assert raised.value.status_code == 400


def test_token_array_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="input"):
        EmbeddingsRequest.model_validate({"model": "m", "input": [[1, 2, 3]]})


def test_vectors_come_back_in_input_order() -> None:
    result = EmbeddingsResult(model="m", inputs=2, encoding="float")
    for message in (
        embedding(produced(1, [0.0, 1.0])),
        embedding(produced(0, [1.0, 0.0])),
        embedding(EmbeddingDone()),
    ):
        result.feed(message)
    assert result.answer() == (
        200,
        {
            "object": "list",
            "data": [
                {"object": "embedding", "embedding": [1.0, 0.0], "index": 0},
                {"object": "embedding", "embedding": [0.0, 1.0], "index": 1},
            ],
            "model": "m",
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        },
    )


def test_base64_is_little_endian_float32() -> None:
    encoded = encode_vector([0.5, -2.0], "base64")
    assert isinstance(encoded, str)
    assert struct.unpack("<2f", base64.b64decode(encoded)) == (0.5, -2.0)


@pytest.mark.parametrize(
    ("result", "status", "error_type"),
    [
        (
            DocumentExceedsBatchSize(document_tokens=90, n_batch=64, source_document_id="1"),
            400,
            "invalid_request_error",
        ),
        (EmbeddingsDisabled(), 501, "server_error"),
        (EmbeddingRejectedDueToActiveTokenGeneration(), 503, "server_error"),
        (NoEmbeddingsProduced(), 500, "server_error"),
    ],
)
def test_agent_failures(result: EmbeddingResult, status: int, error_type: str) -> None:
    collected = EmbeddingsResult(model="m", inputs=2, encoding="float")
    collected.feed(embedding(result))
    assert collected.done
    answered_status, body = collected.answer()
    assert (answered_status, body["error"]["type"]) == (status, error_type)


def test_oversized_input_names_the_input() -> None:
    collected = EmbeddingsResult(model="m", inputs=2, encoding="float")
    collected.feed(
        embedding(DocumentExceedsBatchSize(document_tokens=90, n_batch=64, source_document_id="1"))
    )
    collected.feed(embedding(NoEmbeddingsProduced()))
    _, body = collected.answer()
    assert (
        body["error"]["message"] == "input 1 is 90 tokens long, more than the agent's n_batch of 64"
    )


def test_disabled_agent_uses_the_native_message() -> None:
    collected = EmbeddingsResult(model="m", inputs=1, encoding="float")
    collected.feed(embedding(EmbeddingsDisabled()))
    assert collected.answer()[1]["error"]["message"] == EMBEDDINGS_DISABLED


def test_balancer_errors_and_stray_tokens() -> None:
    timed_out = EmbeddingsResult(model="m", inputs=1, encoding="float")
    code, description = BUFFER_TIMEOUT
    timed_out.feed(
        ErrorEnvelope(request_id="r", error=ErrorDetails(code=code, description=description))
    )
    assert timed_out.answer()[0] == 504
    stray = EmbeddingsResult(model="m", inputs=1, encoding="float")
    stray.feed(token(ContentToken(value="x")))
    assert stray.answer()[0] == 500


def test_a_missing_vector_is_a_server_error() -> None:
    result = EmbeddingsResult(model="m", inputs=2, encoding="float")
    result.feed(embedding(produced(0, [1.0])))
    result.feed(embedding(EmbeddingDone()))
    status, body = result.answer()
    assert (status, body["error"]["message"]) == (500, "no embedding produced for input 1")
