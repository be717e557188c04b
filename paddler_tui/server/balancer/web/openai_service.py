"""The OpenAI-compatible service (``--compat-openai-addr``).

Paddler's routes (``/health``, ``/v1/chat/completions``, ``/v1/responses``) plus what its users
ask for: ``/v1/models`` (Paddler issue #262) and ``/v1/embeddings`` (#252). Requests go through
the same checks, buffer, dispatch and timeouts as the native inference service.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from pathlib import PurePath
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from paddler_tui.protocol.envelope import ContinueFromConversationHistory, GenerateEmbeddingBatch
from paddler_tui.protocol.ids import new_id
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    OutgoingMessage,
    typed_message,
)
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.balancer import Balancer
from paddler_tui.server.balancer.inference_requests import (
    RequestRejectedError,
    check_embedding_request,
    check_token_request,
    stream_request,
)
from paddler_tui.server.balancer.openai.chat import (
    CHAT_DISABLED,
    ChatCompletion,
    chat_request_params,
)
from paddler_tui.server.balancer.openai.embeddings import (
    EmbeddingsResult,
    embedding_batch_params,
    embedding_inputs,
)
from paddler_tui.server.balancer.openai.errors import (
    INVALID_REQUEST,
    OpenAIError,
    from_body_error,
    from_rejection,
)
from paddler_tui.server.balancer.openai.generation import generation_event
from paddler_tui.server.balancer.openai.models import (
    ChatCompletionRequest,
    EmbeddingsRequest,
    ResponsesRequest,
)
from paddler_tui.server.balancer.openai.responses import (
    RESPONSES_DISABLED,
    ResponsesOutput,
    responses_request_params,
)
from paddler_tui.server.balancer.request_body import BodyError
from paddler_tui.server.balancer.web.http_body import read_json_body
from paddler_tui.server.balancer.web.openai_http import (
    SSE_DONE,
    Answer,
    CollectedResponse,
    json_response,
    sse_data,
    sse_event,
)
from paddler_tui.server.balancer.web.openapi import json_body
from paddler_tui.server.balancer.web.service import build_service
from paddler_tui.server.balancer.web.streaming import LiveStreamingResponse

T = TypeVar("T")

# Relayed tokens among them: every route here reads tokens, so each message becomes models.
Messages = AsyncGenerator[OutgoingMessage, None]


def loaded_models(agents: Iterable[AgentController]) -> list[str]:
    """The file names of the models the agents have loaded (an agent reports a path once ready)."""
    return sorted(
        {PurePath(agent.status.model_path).name for agent in agents if agent.status.model_path}
    )


def model_list(names: list[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": created, "owned_by": "paddler-tui"}
            for name in names
        ],
    }


class Collector(Protocol):
    """The state of one non-streaming answer."""

    @property
    def done(self) -> bool: ...

    def answer(self) -> Answer: ...


def collected(
    messages: Messages, feed: Callable[[InferenceServerMessage], None], state: Collector
) -> CollectedResponse:
    """The answer once every message is fed, or once ``state`` is done (which stops the agent)."""

    async def compute() -> Answer:
        async with contextlib.aclosing(messages) as stream:
            async for message in stream:
                feed(typed_message(message))
                if state.done:
                    break
        return state.answer()

    return CollectedResponse(compute)


def generation_feed(
    state: ChatCompletion | ResponsesOutput,
) -> Callable[[InferenceServerMessage], None]:
    def feed(message: InferenceServerMessage) -> None:
        event = generation_event(message)
        if event is not None:
            state.feed(event)

    return feed


async def chat_events(completion: ChatCompletion, messages: Messages) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(messages) as stream:
        async for message in stream:
            event = generation_event(typed_message(message))
            if event is not None:
                for chunk in completion.chunks(event):
                    yield sse_data(chunk)
    yield SSE_DONE


async def responses_events(output: ResponsesOutput, messages: Messages) -> AsyncIterator[bytes]:
    async with contextlib.aclosing(messages) as stream:
        async for message in stream:
            event = generation_event(typed_message(message))
            if event is not None:
                for payload in output.events(event):
                    yield sse_event(payload)
            if output.done:
                return


class OpenAIService:
    """The routes' work; requests are checked as on the native service, then forwarded."""

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.started = int(time.time())

    def _event_stream(self, events: AsyncIterator[bytes]) -> LiveStreamingResponse:
        """Server-sent events; a client that stops reading is cut at the item timeout."""
        return LiveStreamingResponse(
            events, media_type="text/event-stream", send_timeout_s=self.balancer.item_timeout_s
        )

    async def chat_completions(self, request: Request) -> Response:
        body = await self._parse(request, ChatCompletionRequest)
        native = ContinueFromConversationHistory(value=chat_request_params(body))
        self._check_tokens(native, CHAT_DISABLED)
        request_id = new_id()
        completion = ChatCompletion(
            request_id=request_id,
            model=body.model,
            created=int(time.time()),
            max_tokens=native.value.max_tokens,
            include_usage=bool(body.stream_options and body.stream_options.include_usage),
        )
        messages = stream_request(self.balancer, request_id, native, affinity_key=body.affinity_key)
        if body.stream:
            return self._event_stream(chat_events(completion, messages))
        return collected(messages, generation_feed(completion), completion)

    async def responses(self, request: Request) -> Response:
        body = await self._parse(request, ResponsesRequest)
        native = ContinueFromConversationHistory(value=responses_request_params(body))
        self._check_tokens(native, RESPONSES_DISABLED)
        request_id = new_id()
        applicable = self.balancer.cluster.applicable
        parameters = (
            applicable.inference_parameters
            if applicable is not None
            else InferenceParameters.default()
        )
        output = ResponsesOutput(
            response_id=f"resp_{request_id}",
            model=body.model,
            created_at=int(time.time()),
            instructions=body.instructions,
            max_tokens=native.value.max_tokens,
            # What sampling actually uses: the request's override, else the cluster's.
            temperature=parameters.temperature if body.temperature is None else body.temperature,
            top_p=parameters.top_p if body.top_p is None else body.top_p,
        )
        messages = stream_request(self.balancer, request_id, native, affinity_key=body.affinity_key)
        if body.stream:
            return self._event_stream(responses_events(output, messages))
        return collected(messages, generation_feed(output), output)

    async def embeddings(self, request: Request) -> Response:
        body = await self._parse(request, EmbeddingsRequest)
        inputs = embedding_inputs(body)
        try:
            check_embedding_request(self.balancer)
        except RequestRejectedError as rejected:
            raise from_rejection(rejected) from rejected
        result = EmbeddingsResult(
            model=body.model, inputs=len(inputs), encoding=body.encoding_format or "float"
        )
        native = GenerateEmbeddingBatch(value=embedding_batch_params(inputs))
        return collected(stream_request(self.balancer, new_id(), native), result.feed, result)

    async def list_models(self) -> Response:
        return json_response(
            200, model_list(loaded_models(self.balancer.pool.agents()), self.started)
        )

    async def retrieve_model(self, model_id: str) -> Response:
        if model_id not in loaded_models(self.balancer.pool.agents()):
            raise OpenAIError(
                404,
                f"The model '{model_id}' does not exist",
                error_type=INVALID_REQUEST,
                param="model",
                code="model_not_found",
            )
        return json_response(200, model_list([model_id], self.started)["data"][0])

    async def _parse(self, request: Request, model: type[T]) -> T:
        try:
            parsed: T = await read_json_body(
                request, model, limit=self.balancer.settings.body_limit
            )
        except BodyError as error:
            raise from_body_error(error) from error
        return parsed

    def _check_tokens(self, request: ContinueFromConversationHistory, disabled: str) -> None:
        try:
            check_token_request(self.balancer, request)
        except RequestRejectedError as rejected:
            raise from_rejection(rejected, disabled=disabled) from rejected


# What OpenAI answers to a wrong key, so its clients raise AuthenticationError.
INVALID_API_KEY = OpenAIError(
    401, "Incorrect API key provided", error_type=INVALID_REQUEST, code="invalid_api_key"
)


async def _openai_error(_: Request, error: Exception) -> Response:
    assert isinstance(error, OpenAIError)
    return json_response(error.status_code, error.body())


async def _http_error(_: Request, error: Exception) -> Response:
    # Unknown routes and methods answer in OpenAI's shape too.
    assert isinstance(error, HTTPException)
    body = OpenAIError(error.status_code, str(error.detail), error_type=INVALID_REQUEST).body()
    response = json_response(error.status_code, body)
    # A 405 must keep its Allow header (RFC 9110).
    response.headers.update(error.headers or {})
    return response


def create_openai_app(balancer: Balancer) -> FastAPI:
    settings = balancer.settings
    return build_service(
        "paddler-tui OpenAI-compatible service",
        openai_routes(balancer),
        api_key=settings.api_key,
        cors_allowed_hosts=settings.inference_cors_allowed_hosts,
        refusal=json_response(401, INVALID_API_KEY.body()),
        exception_handlers={OpenAIError: _openai_error, HTTPException: _http_error},
    )


def openai_routes(balancer: Balancer) -> APIRouter:
    router = APIRouter()
    service = OpenAIService(balancer)
    router.add_api_route("/v1/models", service.list_models, methods=["GET"])
    router.add_api_route("/v1/models/{model_id}", service.retrieve_model, methods=["GET"])
    for path, endpoint, body in (
        ("/v1/chat/completions", service.chat_completions, ChatCompletionRequest),
        ("/v1/responses", service.responses, ResponsesRequest),
        ("/v1/embeddings", service.embeddings, EmbeddingsRequest),
    ):
        router.add_api_route(path, endpoint, methods=["POST"], openapi_extra=json_body(body))
    return router
