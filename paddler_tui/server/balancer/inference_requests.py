"""What every inference front end (REST, socket, OpenAI) does before forwarding a request."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    GeneratedToken,
    GenerateEmbeddingBatch,
)
from paddler_tui.protocol.generated_token import TokenGenerationDisabled
from paddler_tui.protocol.inference_socket import OutgoingMessage, ResponseEnvelope
from paddler_tui.server.balancer.balancer import Balancer
from paddler_tui.server.balancer.embedding_batch import embed_batch
from paddler_tui.server.balancer.request_forwarder import ClientSink
from paddler_tui.server.balancer.routing.prefix_chain import request_chain

TOKENS_DISABLED = "Token generation is disabled while the cluster is configured for embeddings"
EMBEDDINGS_DISABLED = "Embedding generation is not enabled in the inference parameters"
NO_APPLICABLE_STATE = "Balancer applicable state is not yet set"
NO_AGENTS = "No agents are currently connected"


class RequestRejectedError(Exception):
    """Refused before streaming: the status code and text Paddler answers with."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def check_token_request(
    balancer: Balancer, request: ContinueFromConversationHistory | ContinueFromRawPrompt
) -> None:
    """Raise RequestRejectedError (400, 501) for a request that must not be forwarded."""
    if not balancer.cluster.token_generation_enabled:
        raise RequestRejectedError(501, TOKENS_DISABLED)
    if isinstance(request, ContinueFromConversationHistory):
        invalid = request.value.validation_error()
        if invalid is not None:
            raise RequestRejectedError(400, f"Invalid request parameters: {invalid}")


def check_embedding_request(balancer: Balancer) -> None:
    """Raise RequestRejectedError (501, 503) in Paddler's order of checks."""
    cluster = balancer.cluster
    if cluster.applicable is None:
        raise RequestRejectedError(503, NO_APPLICABLE_STATE)
    if not cluster.embeddings_enabled:
        raise RequestRejectedError(501, EMBEDDINGS_DISABLED)
    if len(balancer.pool) == 0:
        raise RequestRejectedError(503, NO_AGENTS)


def token_generation_disabled(request_id: str) -> ResponseEnvelope:
    return ResponseEnvelope(
        generated_by=None,
        request_id=request_id,
        response=GeneratedToken(value=TokenGenerationDisabled(value=TOKENS_DISABLED)),
    )


def stream_request(
    balancer: Balancer,
    request_id: str,
    request: ContinueFromConversationHistory | ContinueFromRawPrompt | GenerateEmbeddingBatch,
    *,
    embedding_done_id: str | None = None,
    deliver_tokens: ClientSink | None = None,
    affinity_key: str | None = None,
) -> AsyncGenerator[OutgoingMessage, None]:
    """The messages of an already checked request.

    ``deliver_tokens`` takes a token request's relayed tokens at once, outside the iterator.
    ``affinity_key`` (OpenAI's ``prompt_cache_key`` or ``user``) keeps prefix routing apart
    for requests with different keys.
    """
    if isinstance(request, GenerateEmbeddingBatch):
        applicable = balancer.cluster.applicable
        assert applicable is not None
        return embed_batch(
            balancer.forwarder,
            request.value,
            agents=len(balancer.pool),
            batch_size=applicable.inference_parameters.embedding_batch_size,
            final_request_id=embedding_done_id,
        )
    return balancer.forwarder.forward(
        request_id, request, deliver=deliver_tokens, chain=request_chain(request, affinity_key)
    )
