"""The management service: agents, desired state, buffer, metrics and the agent socket."""

from __future__ import annotations

import logging

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_socket import (
    ChatTemplateOverride,
    GetChatTemplateOverride,
    GetModelMetadata,
    ModelMetadataResponse,
)
from paddler_tui.protocol.agent_status import BufferedRequestsSnapshot
from paddler_tui.protocol.desired_state import AgentDesiredState, BalancerDesiredState
from paddler_tui.server.balancer.agent_controller import AgentDisconnectedError
from paddler_tui.server.balancer.balancer import Balancer
from paddler_tui.server.balancer.metrics import (
    PROMETHEUS_CONTENT_TYPE,
    AgentPromptTokens,
    render_prometheus,
    render_prometheus_counters,
)
from paddler_tui.server.balancer.request_body import BodyError
from paddler_tui.server.balancer.web.agent_socket import serve_agent_socket
from paddler_tui.server.balancer.web.http_body import read_json_body
from paddler_tui.server.balancer.web.monitor_socket import serve_monitor_socket
from paddler_tui.server.balancer.web.openapi import json_body
from paddler_tui.server.balancer.web.service import build_service
from paddler_tui.server.balancer.web.sse import snapshot_events
from paddler_tui.server.balancer.web.streaming import LiveStreamingResponse

logger = logging.getLogger(__name__)

AGENT_QUERY_TIMEOUT_S = 3.0
JSON = "application/json"


def json_response(model: object, tp: object, status_code: int = 200) -> Response:
    return Response(codec.encode(codec.adapter_for(tp), model), status_code, media_type=JSON)


def create_management_app(balancer: Balancer) -> FastAPI:
    settings = balancer.settings
    return build_service(
        "paddler-tui management",
        management_routes(balancer),
        api_key=settings.api_key,
        cors_allowed_hosts=settings.management_cors_allowed_hosts,
    )


def management_routes(balancer: Balancer) -> APIRouter:
    router = APIRouter()
    pool, cluster, buffer = balancer.pool, balancer.cluster, balancer.buffer

    @router.get("/api/v1/agents")
    async def agents() -> Response:
        return json_response(pool.snapshot(), type(pool.snapshot()))

    @router.get("/api/v1/agents/stream")
    async def agents_stream() -> LiveStreamingResponse:
        def snapshot() -> bytes:
            value = pool.snapshot()
            return codec.encode(codec.adapter_for(type(value)), value)

        return LiveStreamingResponse(
            snapshot_events(pool.changed, snapshot, ended=lambda: pool.closed),
            media_type="text/event-stream",
        )

    def buffered_snapshot() -> bytes:
        value = BufferedRequestsSnapshot(buffered_requests_current=buffer.buffered)
        return codec.encode(codec.adapter_for(BufferedRequestsSnapshot), value)

    @router.get("/api/v1/buffered_requests")
    async def buffered_requests() -> Response:
        return Response(buffered_snapshot(), media_type=JSON)

    @router.get("/api/v1/buffered_requests/stream")
    async def buffered_requests_stream() -> LiveStreamingResponse:
        return LiveStreamingResponse(
            snapshot_events(buffer.changed, buffered_snapshot, ended=lambda: buffer.closed),
            media_type="text/event-stream",
        )

    @router.get("/api/v1/balancer_desired_state")
    async def get_desired_state() -> Response:
        try:
            state = await cluster.database.read()
        except Exception as error:
            logger.error("cannot read the desired state: %s", error)
            return PlainTextResponse(str(error), status_code=500)
        return json_response(state, BalancerDesiredState)

    @router.put("/api/v1/balancer_desired_state", openapi_extra=json_body(BalancerDesiredState))
    async def put_desired_state(request: Request) -> Response:
        try:
            state: BalancerDesiredState = await read_json_body(
                request, BalancerDesiredState, limit=balancer.settings.body_limit
            )
        except BodyError as error:
            return PlainTextResponse(error.message, status_code=error.status_code)
        invalid = state.inference_parameters.validation_error()
        if invalid is not None:
            return PlainTextResponse(invalid, status_code=400)
        try:
            await cluster.store(state)
        except Exception as error:
            logger.error("cannot store the desired state: %s", error)
            return PlainTextResponse(str(error), status_code=500)
        return Response(status_code=204)

    @router.get("/api/v1/balancer_applicable_state")
    async def applicable_state() -> Response:
        return json_response(cluster.applicable, AgentDesiredState | None)

    @router.get("/api/v1/agent/{agent_id}/chat_template_override")
    async def chat_template_override(agent_id: str) -> Response:
        return await _ask_agent(agent_id, GetChatTemplateOverride(), ChatTemplateOverride)

    @router.get("/api/v1/agent/{agent_id}/model_metadata")
    async def model_metadata(agent_id: str) -> Response:
        return await _ask_agent(agent_id, GetModelMetadata(), ModelMetadataResponse)

    async def _ask_agent(
        agent_id: str,
        question: GetChatTemplateOverride | GetModelMetadata,
        answer_type: type[ChatTemplateOverride | ModelMetadataResponse],
    ) -> Response:
        agent = pool.get(agent_id)
        if agent is None:
            return Response(status_code=404)
        try:
            answer = await agent.query(question, AGENT_QUERY_TIMEOUT_S)
        except TimeoutError:
            return Response(status_code=504)
        except AgentDisconnectedError:
            return Response(status_code=502)
        except Exception as error:
            return PlainTextResponse(str(error), status_code=500)
        if not isinstance(answer, answer_type):
            return PlainTextResponse("the agent answered something else", status_code=502)
        value = answer.value
        return json_response(value, type(value) if value is not None else None)

    @router.get("/metrics")
    async def metrics() -> Response:
        gauges = balancer.gauges()
        prefix = balancer.settings.statsd_prefix
        text = render_prometheus(
            prefix,
            slots_processing=gauges.slots_processing,
            slots_total=gauges.slots_total,
            requests_buffered=gauges.requests_buffered,
        )
        counters = render_prometheus_counters(
            prefix,
            [
                AgentPromptTokens(
                    agent.id,
                    agent.prompt_tokens,
                    agent.cached_prompt_tokens,
                    ram=agent.host.prompt_cache_ram,
                )
                for agent in pool.agents()
            ],
            pool.decisions,
        )
        return Response(f"{text}\n{counters}", media_type=PROMETHEUS_CONTENT_TYPE)

    @router.websocket("/api/v1/agent_socket/{agent_id}")
    async def agent_socket(websocket: WebSocket, agent_id: str) -> None:
        await serve_agent_socket(
            websocket, agent_id, pool=pool, cluster=cluster, monitor=balancer.monitor
        )

    @router.websocket("/api/v1/monitor_socket")
    async def monitor_socket(websocket: WebSocket) -> None:
        await serve_monitor_socket(websocket, balancer)

    return router
