"""The inference service: NDJSON REST streams and the multiplexed inference socket."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response

from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    ContinueFromRawPrompt,
    GenerateEmbeddingBatch,
)
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.inference_socket import (
    OutgoingMessage,
    encode_inference_server_message,
)
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    ContinueFromRawPromptParams,
    GenerateEmbeddingBatchParams,
)
from paddler_tui.server.balancer.balancer import Balancer
from paddler_tui.server.balancer.inference_requests import (
    RequestRejectedError,
    check_embedding_request,
    check_token_request,
    stream_request,
)
from paddler_tui.server.balancer.request_body import BodyError
from paddler_tui.server.balancer.web.http_body import read_json_body
from paddler_tui.server.balancer.web.inference_socket import InferenceSocketSession
from paddler_tui.server.balancer.web.openapi import json_body
from paddler_tui.server.balancer.web.service import build_service
from paddler_tui.server.balancer.web.streaming import LiveStreamingResponse


async def ndjson(
    messages: AsyncGenerator[OutgoingMessage, None],
) -> AsyncIterator[bytes]:
    # Closing the lines closes the request's stream at once (stop the agent, leave the buffer),
    # not whenever the garbage collector finalizes an abandoned generator.
    async with contextlib.aclosing(messages):
        async for message in messages:
            yield encode_inference_server_message(message) + b"\n"


def create_inference_app(balancer: Balancer) -> FastAPI:
    settings = balancer.settings
    return build_service(
        "paddler-tui inference",
        inference_routes(balancer),
        api_key=settings.api_key,
        cors_allowed_hosts=settings.inference_cors_allowed_hosts,
    )


def inference_routes(balancer: Balancer) -> APIRouter:
    router = APIRouter()
    limit = balancer.settings.body_limit

    async def respond(
        request: ContinueFromConversationHistory | ContinueFromRawPrompt | GenerateEmbeddingBatch,
    ) -> Response | LiveStreamingResponse:
        try:
            if isinstance(request, GenerateEmbeddingBatch):
                check_embedding_request(balancer)
            else:
                check_token_request(balancer, request)
        except RequestRejectedError as rejected:
            return PlainTextResponse(rejected.message, status_code=rejected.status_code)
        stream = stream_request(balancer, new_id(), request)
        return LiveStreamingResponse(
            ndjson(stream), media_type="application/json", send_timeout_s=balancer.item_timeout_s
        )

    @router.post(
        "/api/v1/continue_from_conversation_history",
        response_model=None,
        openapi_extra=json_body(ContinueFromConversationHistoryParams),
    )
    async def continue_from_conversation_history(
        request: Request,
    ) -> Response | LiveStreamingResponse:
        try:
            params = await read_json_body(
                request, ContinueFromConversationHistoryParams, limit=limit
            )
        except BodyError as error:
            return PlainTextResponse(error.message, status_code=error.status_code)
        return await respond(ContinueFromConversationHistory(value=params))

    @router.post(
        "/api/v1/continue_from_raw_prompt",
        response_model=None,
        openapi_extra=json_body(ContinueFromRawPromptParams),
    )
    async def continue_from_raw_prompt(request: Request) -> Response | LiveStreamingResponse:
        try:
            params = await read_json_body(request, ContinueFromRawPromptParams, limit=limit)
        except BodyError as error:
            return PlainTextResponse(error.message, status_code=error.status_code)
        return await respond(ContinueFromRawPrompt(value=params))

    @router.post(
        "/api/v1/generate_embedding_batch",
        response_model=None,
        openapi_extra=json_body(GenerateEmbeddingBatchParams),
    )
    async def generate_embedding_batch(request: Request) -> Response | LiveStreamingResponse:
        try:
            params = await read_json_body(request, GenerateEmbeddingBatchParams, limit=limit)
        except BodyError as error:
            return PlainTextResponse(error.message, status_code=error.status_code)
        return await respond(GenerateEmbeddingBatch(value=params))

    @router.websocket("/api/v1/inference_socket")
    async def inference_socket(websocket: WebSocket) -> None:
        await InferenceSocketSession(websocket, balancer).run()

    return router
