"""Running one embedding batch: over the inference socket, or over HTTP where it is missing.

The socket route is a paddler-tui extension. Paddler drops the unknown request without a word,
so a socket that stays silent for :data:`FIRST_REPLY_TIMEOUT_S` is taken to be Paddler's: the
request is withdrawn and sent again to ``/api/v1/generate_embedding_batch``. Either way the
results arrive as :data:`RunEvent`\\ s, so the screen does not care which route served them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.errors import HttpStatusError
from paddler_tui.protocol.embedding import (
    DocumentExceedsBatchSize,
    EmbeddingDone,
    EmbeddingError,
    EmbeddingProduced,
    EmbeddingRejectedDueToActiveTokenGeneration,
    EmbeddingsDisabled,
    NoEmbeddingsProduced,
)
from paddler_tui.protocol.envelope import EmbeddingResponse, ErrorEnvelope, GenerateEmbeddingBatch
from paddler_tui.protocol.inference_socket import InferenceServerMessage, ResponseEnvelope

if TYPE_CHECKING:
    from paddler_tui.client.balancer_services import BalancerServices
    from paddler_tui.client.inference_socket import RequestStream
    from paddler_tui.protocol.embedding import Embedding
    from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams

FIRST_REPLY_TIMEOUT_S = 3.0

# Refusals Paddler sends before any work starts (its texts, on the socket as error envelopes).
# Unlike a failed chunk, no final Done follows them.
_REFUSALS_503 = ("Balancer applicable state is not yet set", "No agents are currently connected")

Transport = Literal["socket", "http"]


@dataclass(frozen=True)
class TransportChosen:
    transport: Transport
    reason: str = ""


@dataclass(frozen=True)
class Produced:
    embedding: Embedding
    generated_by: str | None


@dataclass(frozen=True)
class DocumentTooLarge:
    document_id: str
    document_tokens: int
    n_batch: int


@dataclass(frozen=True)
class ChunkFailed:
    """Part of the batch failed (an agent's error, a timeout); the rest goes on."""

    description: str
    code: int | None = None


@dataclass(frozen=True)
class Rejected:
    """The balancer refused the whole batch; ``status`` is the HTTP status it means."""

    status: int
    text: str


RunEvent = TransportChosen | Produced | DocumentTooLarge | ChunkFailed | Rejected


def is_refusal(error: ErrorEnvelope) -> bool:
    code, description = error.error.code, error.error.description
    return code in (400, 501) or (code == 503 and description in _REFUSALS_503)


def translate(message: InferenceServerMessage) -> RunEvent | None:
    """The event one streamed message means; ``None`` for the final Done and for noise."""
    if isinstance(message, ErrorEnvelope):
        if is_refusal(message):
            return Rejected(message.error.code, message.error.description)
        return ChunkFailed(message.error.description, message.error.code)
    if not (
        isinstance(message, ResponseEnvelope) and isinstance(message.response, EmbeddingResponse)
    ):
        return None
    result = message.response.value
    if isinstance(result, EmbeddingProduced):
        return Produced(result.value, message.generated_by)
    if isinstance(result, DocumentExceedsBatchSize):
        return DocumentTooLarge(result.source_document_id, result.document_tokens, result.n_batch)
    if isinstance(result, EmbeddingError):
        return ChunkFailed(f"agent error: {result.value}")
    if isinstance(result, EmbeddingsDisabled):
        return ChunkFailed("the agent has embeddings disabled")
    if isinstance(result, EmbeddingRejectedDueToActiveTokenGeneration):
        return ChunkFailed("the agent is busy generating tokens")
    if isinstance(result, NoEmbeddingsProduced):
        return ChunkFailed("the agent produced no embeddings")
    assert isinstance(result, EmbeddingDone)
    return None


async def run_embedding_batch(
    services: BalancerServices,
    params: GenerateEmbeddingBatchParams,
    *,
    use_socket: bool = True,
    first_reply_timeout_s: float = FIRST_REPLY_TIMEOUT_S,
) -> AsyncIterator[RunEvent]:
    """Every event of the batch, through the last one; a refusal is the last.

    Raises :class:`~paddler_tui.client.errors.ClientError` when the balancer cannot be reached.
    """
    if use_socket:
        socket = await services.inference_socket()
        stream = await socket.request(GenerateEmbeddingBatch(value=params))
        messages = aiter(stream)
        try:
            first = await asyncio.wait_for(anext(messages), first_reply_timeout_s)
        except TimeoutError:
            await stream.stop()
            yield TransportChosen(
                "http",
                "the balancer ignored the embedding request on the inference socket "
                "(Paddler serves embeddings over HTTP only)",
            )
        except StopAsyncIteration:  # pragma: no cover - a stream always ends with a message
            return
        else:
            yield TransportChosen("socket")
            async for event in _socket_events(stream, first, messages):
                yield event
            return
    else:
        yield TransportChosen("http")
    try:
        async with closing(services.inference_http.generate_embedding_batch(params)) as lines:
            async for message in lines:
                translated = translate(message)
                if translated is not None:
                    yield translated
    except HttpStatusError as error:
        yield Rejected(error.status_code, error.text)


async def _socket_events(
    stream: RequestStream,
    first: InferenceServerMessage,
    rest: AsyncIterator[InferenceServerMessage],
) -> AsyncIterator[RunEvent]:
    message: InferenceServerMessage | None = first
    try:
        while message is not None:
            event = translate(message)
            if event is not None:
                yield event
                if isinstance(event, Rejected):
                    return
            message = await anext(rest, None)
    finally:
        # Cancelled or refused before the final Done: withdraw it so no slot is held for us.
        await stream.stop()
