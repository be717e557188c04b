"""The inference service over HTTP: NDJSON streams of the REST routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from paddler_tui.client.framing import LineSplitter
from paddler_tui.client.http import HttpClient, decode, encode
from paddler_tui.protocol.inference_socket import InferenceServerMessage
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
)


class InferenceHttpClient:
    def __init__(self, addr: str, *, api_key: str | None = None) -> None:
        self._http = HttpClient(addr, api_key=api_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> str:
        return (await self._http.request("GET", "/health")).text

    def continue_from_conversation_history(
        self, params: ContinueFromConversationHistoryParams
    ) -> AsyncIterator[InferenceServerMessage]:
        return self._messages(
            "/api/v1/continue_from_conversation_history",
            encode(ContinueFromConversationHistoryParams, params),
        )

    def continue_from_raw_prompt(
        self, params: ContinueFromRawPromptParams
    ) -> AsyncIterator[InferenceServerMessage]:
        return self._messages(
            "/api/v1/continue_from_raw_prompt", encode(ContinueFromRawPromptParams, params)
        )

    def generate_embedding_batch(
        self, params: GenerateEmbeddingBatchParams
    ) -> AsyncIterator[InferenceServerMessage]:
        return self._messages(
            "/api/v1/generate_embedding_batch", encode(GenerateEmbeddingBatchParams, params)
        )

    async def _messages(self, path: str, body: bytes) -> AsyncIterator[InferenceServerMessage]:
        lines = LineSplitter()
        async with self._http.stream("POST", path, content=body) as chunks:
            async for chunk in chunks:
                for line in lines.feed(chunk):
                    if line.strip():
                        yield decode(InferenceServerMessage, line)
            for line in lines.finish():
                yield decode(InferenceServerMessage, line)
