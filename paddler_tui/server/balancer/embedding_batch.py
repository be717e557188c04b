"""Splitting an embedding batch across agents and merging the chunks' streams (spec §3.5)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from typing import TypeVar

from paddler_tui.protocol.embedding import EmbeddingDone, EmbeddingInputDocument
from paddler_tui.protocol.envelope import EmbeddingResponse, GenerateEmbeddingBatch
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    ResponseEnvelope,
    typed_message,
)
from paddler_tui.protocol.requests import GenerateEmbeddingBatchParams
from paddler_tui.server.balancer.request_forwarder import RequestForwarder

T = TypeVar("T")


def split_documents(documents: Sequence[T], *, agents: int, batch_size: int) -> list[list[T]]:
    """``min(N, max(A, ceil(N / C)))`` chunks in order, the first ``N mod k`` one larger."""
    count = len(documents)
    if count == 0:
        return []
    chunks = min(count, max(agents, -(-count // batch_size)))
    base, extra = divmod(count, chunks)
    result: list[list[T]] = []
    start = 0
    for index in range(chunks):
        size = base + (1 if index < extra else 0)
        result.append(list(documents[start : start + size]))
        start += size
    return result


async def embed_batch(
    forwarder: RequestForwarder,
    params: GenerateEmbeddingBatchParams,
    *,
    agents: int,
    batch_size: int,
    final_request_id: str | None = None,
) -> AsyncGenerator[InferenceServerMessage, None]:
    """Every chunk's messages as they come (agents' own Done suppressed), then one Done.

    ``final_request_id`` names the closing Done (the socket uses the client's id); by default it
    gets a fresh id, as in Paddler.
    """
    chunks = split_documents(params.input_batch, agents=agents, batch_size=batch_size)
    # None marks the end of every chunk.
    merged: asyncio.Queue[InferenceServerMessage | None] = asyncio.Queue()

    async def run_chunk(documents: list[EmbeddingInputDocument]) -> None:
        request = GenerateEmbeddingBatch(
            value=GenerateEmbeddingBatchParams(
                input_batch=documents, normalization_method=params.normalization_method
            )
        )
        async with contextlib.aclosing(forwarder.forward(new_id(), request)) as stream:
            async for message in stream:
                if not (
                    isinstance(message, ResponseEnvelope)
                    and isinstance(message.response, EmbeddingResponse)
                    and isinstance(message.response.value, EmbeddingDone)
                ):
                    # As models: consumers rewrite ids and read results (a stray token too).
                    merged.put_nowait(typed_message(message))

    tasks = [asyncio.create_task(run_chunk(chunk)) for chunk in chunks]
    waiting = asyncio.create_task(_signal_end(tasks, merged))
    try:
        while (item := await merged.get()) is not None:
            yield item
    finally:
        for task in (*tasks, waiting):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, waiting, return_exceptions=True)
    yield embedding_done(final_request_id or new_id())


def embedding_done(request_id: str) -> ResponseEnvelope:
    """The balancer's one final Done of a whole batch."""
    return ResponseEnvelope(
        generated_by=None, request_id=request_id, response=EmbeddingResponse(value=EmbeddingDone())
    )


async def _signal_end(
    tasks: list[asyncio.Task[None]], merged: asyncio.Queue[InferenceServerMessage | None]
) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)
    merged.put_nowait(None)
