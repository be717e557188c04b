"""``POST /v1/embeddings`` (beyond Paddler, its issue #252), served by the embedding batch path.

Each input becomes a document whose id is its index, so results, which the agents return in
any order, are put back in input order. Vectors are L2-normalized, as OpenAI's are.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from paddler_tui.protocol.embedding import (
    L2,
    DocumentExceedsBatchSize,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingInputDocument,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingResult,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
)
from paddler_tui.protocol.envelope import EmbeddingResponse, ErrorEnvelope
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ServerNotificationEnvelope,
    Timeout,
    TooManyBufferedRequests,
)
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from paddler_tui.server.balancer.inference_requests import EMBEDDINGS_DISABLED
from paddler_tui.server.balancer.openai.errors import (
    OpenAIError,
    from_error_envelope,
    from_unsent_response,
    invalid_request,
)
from paddler_tui.server.balancer.openai.models import EmbeddingsRequest

EncodingFormat = Literal["float", "base64"]


def embedding_inputs(request: EmbeddingsRequest) -> list[str]:
    inputs = [request.input] if isinstance(request.input, str) else request.input
    if not inputs:
        raise invalid_request("input must not be empty", param="input")
    return inputs


def embedding_batch_params(inputs: list[str]) -> GenerateEmbeddingBatchParams:
    return GenerateEmbeddingBatchParams(
        input_batch=[
            EmbeddingInputDocument(content=text, id=str(index)) for index, text in enumerate(inputs)
        ],
        normalization_method=L2(),
    )


def encode_vector(vector: list[float], encoding: EncodingFormat) -> list[float] | str:
    """``base64`` is little-endian float32, which the official clients ask for by default."""
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _result_error(result: EmbeddingResult) -> OpenAIError | None:
    if isinstance(result, DocumentExceedsBatchSize):
        return invalid_request(
            f"input {result.source_document_id} is {result.document_tokens} tokens long, more "
            f"than the agent's n_batch of {result.n_batch}",
            param="input",
        )
    if isinstance(result, EmbeddingsDisabled):
        return OpenAIError(501, EMBEDDINGS_DISABLED)
    if isinstance(result, EmbeddingRejectedDueToActiveTokenGeneration):
        return OpenAIError(503, "the agent is generating tokens and cannot embed now")
    if isinstance(result, NoEmbeddingsProduced):
        return OpenAIError(500, "no embeddings produced")
    if isinstance(result, EmbeddingError):
        return OpenAIError(500, result.value)
    return None


class EmbeddingsResult:
    """Collects a batch's messages into the OpenAI answer; the first failure wins."""

    def __init__(self, *, model: str, inputs: int, encoding: EncodingFormat) -> None:
        self.model = model
        self.inputs = inputs
        self.encoding: EncodingFormat = encoding
        self.vectors: dict[int, list[float]] = {}
        self.error: OpenAIError | None = None

    @property
    def done(self) -> bool:
        return self.error is not None

    def feed(self, message: InferenceServerMessage) -> None:
        error: OpenAIError | None
        if isinstance(message, ErrorEnvelope):
            error = from_error_envelope(message.error)
        elif isinstance(message, ServerNotificationEnvelope):
            return
        elif isinstance(message.response, Timeout | TooManyBufferedRequests):
            error = from_unsent_response(message.response)
        elif not isinstance(message.response, EmbeddingResponse):
            error = OpenAIError(500, "unexpected token result for an embedding request")
        else:
            result = message.response.value
            if isinstance(result, EmbeddingProduced):
                embedding = result.value
                self.vectors[int(embedding.source_document_id)] = embedding.embedding
                return
            if isinstance(result, EmbeddingDone):
                return
            error = _result_error(result)
        self.error = self.error or error

    def answer(self) -> tuple[int, dict[str, Any]]:
        if self.error is not None:
            return self.error.status_code, self.error.body()
        missing = [index for index in range(self.inputs) if index not in self.vectors]
        if missing:
            return 500, OpenAIError(500, f"no embedding produced for input {missing[0]}").body()
        return 200, {
            "object": "list",
            "data": [
                {
                    "object": "embedding",
                    "embedding": encode_vector(self.vectors[index], self.encoding),
                    "index": index,
                }
                for index in range(self.inputs)
            ],
            "model": self.model,
            # Agents do not report how many tokens an embedding took.
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }
