"""Pieces shared by the inference socket and the agent socket envelopes.

Paddler frames both sockets the same way: ``Request{id, request}``, ``Response{generated_by,
request_id, response}``, ``Error{request_id, error}`` and ``Notification(...)``. The request and
response variants that both sockets carry are defined here once.
"""

from __future__ import annotations

from paddler_tui.protocol.embedding import EmbeddingResult
from paddler_tui.protocol.generated_token import GeneratedTokenResult
from paddler_tui.protocol.numbers import I32
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
)
from paddler_tui.protocol.wire import NewtypeVariant, StructVariant, WireModel


class ErrorDetails(WireModel):
    code: I32
    description: str


class ErrorEnvelope(StructVariant):
    TAG = "Error"
    request_id: str
    error: ErrorDetails


class StopRespondingTo(NewtypeVariant):
    """Cancel the request with this id."""

    value: str


class ContinueFromConversationHistory(NewtypeVariant):
    value: ContinueFromConversationHistoryParams


class ContinueFromRawPrompt(NewtypeVariant):
    value: ContinueFromRawPromptParams


class GenerateEmbeddingBatch(NewtypeVariant):
    value: GenerateEmbeddingBatchParams


class GeneratedToken(NewtypeVariant):
    value: GeneratedTokenResult


class EmbeddingResponse(NewtypeVariant):
    TAG = "Embedding"
    value: EmbeddingResult
