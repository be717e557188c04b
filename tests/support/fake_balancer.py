"""A fake balancer for UI tests: the real protocol, scripted and deterministic data.

It serves the inference and management services on two ephemeral 127.0.0.1 ports from a thread
of its own (uvicorn + Starlette), so it works both under ``App.run_test`` and under
pytest-textual-snapshot, which runs the app in a loop of its own. Everything it sends goes
through the real codecs. Tests change what it serves with the setters, which are thread-safe.

Served: ``/health``; agents, buffered requests (JSON and SSE); desired state GET/PUT (PUTs are
recorded), applicable state; each agent's model metadata and chat template override; the
monitor socket with scripted :class:`MonitorUpdate`\\ s (absent when ``monitor`` is ``None``, as in
Paddler) or, with ``live_monitor``, the agents as the real balancer shows them, with each
agent's ``extra_buffers`` verdict (a paddler-tui agent's report), its ``traffic`` (prompt-cache
hits, routing counts and its prompt cache in host memory) and ``local_agents`` (serve's
supervision); the inference socket and ``/api/v1/generate_embedding_batch`` with embeddings
computed from each document's text, and conversation requests answered with a scripted reply.

On the socket each request streams on its own (``item_delay_s`` apart) and ``StopRespondingTo``
cancels it, as on the real balancer; ``RawFrame`` items send malformed data on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from paddler_tui.client.monitoring.sse_fallback import monitor_agent
from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_socket import ExtraBuffers, PromptCacheRam
from paddler_tui.protocol.agent_status import (
    AgentControllerPoolSnapshot,
    AgentControllerSnapshot,
    BufferedRequestsSnapshot,
    ModelMetadata,
)
from paddler_tui.protocol.desired_state import BalancerDesiredState, ChatTemplate
from paddler_tui.protocol.embedding import (
    Embedding,
    EmbeddingDone,
    EmbeddingProduced,
    normalize,
)
from paddler_tui.protocol.envelope import (
    ContinueFromConversationHistory,
    EmbeddingResponse,
    ErrorDetails,
    ErrorEnvelope,
    GeneratedToken,
    GenerateEmbeddingBatch,
)
from paddler_tui.protocol.generated_token import ContentToken, Done, GeneratedTokenResult
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.inference_socket import (
    ClientNotificationEnvelope,
    InferenceServerMessage,
    RequestEnvelope,
    ResponseEnvelope,
    decode_inference_client_message,
    encode_inference_server_message,
)
from paddler_tui.protocol.model_source import AgentDesiredModel, NoModel
from paddler_tui.protocol.monitor import (
    MonitorBuffer,
    MonitorLocalAgent,
    MonitorTimeouts,
    MonitorUpdate,
    RoutingCounts,
    encode_monitor_update,
)
from paddler_tui.protocol.requests import (
    ContinueFromConversationHistoryParams,
    GenerateEmbeddingBatchParams,
)
from paddler_tui.protocol.usage import TokenUsage

EMBEDDINGS_DISABLED = "Embedding generation is not enabled in the inference parameters"
# 2026-01-01 12:00:00 UTC: the live monitor's server time, so its frames never change.
LIVE_MONITOR_TIME = 1_767_268_800_000


def agent_snapshot(
    agent_id: str,
    name: str,
    *,
    slots_total: int = 2,
    slots_processing: int = 0,
    model_path: str | None = "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
    **fields: Any,
) -> AgentControllerSnapshot:
    values: dict[str, Any] = {
        "desired_slots_total": slots_total,
        "download_current": 0,
        "download_filename": None,
        "download_indeterminate": False,
        "download_total": 0,
        "id": agent_id,
        "issues": [],
        "model_path": model_path,
        "name": name,
        "slots_processing": slots_processing,
        "slots_total": slots_total,
        "state_application_status": "Applied",
        "uses_chat_template_override": False,
    }
    values.update(fields)
    return AgentControllerSnapshot(**values)


def desired_state(
    model: AgentDesiredModel | None = None, **parameters: Any
) -> BalancerDesiredState:
    """Paddler's defaults with ``parameters`` changed (e.g. ``enable_embeddings=True``)."""
    return BalancerDesiredState.default().model_copy(
        update={
            "model": model if model is not None else NoModel(),
            "inference_parameters": InferenceParameters.default().model_copy(update=parameters),
        }
    )


def fake_embedding(content: str, dimensions: int) -> list[float]:
    """A vector that depends only on the text: equal texts embed equally."""
    digest = hashlib.sha256(content.encode()).digest()
    return [(digest[index % len(digest)] - 127.5) / 127.5 for index in range(dimensions)]


@dataclass(frozen=True)
class AgentTraffic:
    """What the balancer counted of an agent's finished requests, and why it chose the agent."""

    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    routed: RoutingCounts = field(default_factory=RoutingCounts)
    # What the agent reported of its prompt cache in host memory.
    prompt_cache_ram: PromptCacheRam | None = None


@dataclass(frozen=True)
class RawFrame:
    """A socket frame sent exactly as given, valid or not."""

    text: str


# One scripted item of a conversation answer, sent in order on the inference socket.
ChatItem = GeneratedTokenResult | ErrorDetails | RawFrame
# Answers one conversation request with the items to send.
ChatScript = Callable[[ContinueFromConversationHistoryParams], Sequence[ChatItem]]


@dataclass
class FakeScript:
    """What the fake serves; change it through :class:`FakeBalancer`'s setters while running."""

    agents: list[AgentControllerSnapshot] = field(
        default_factory=lambda: [agent_snapshot("a1", "alpha"), agent_snapshot("a2", "beta")]
    )
    buffered: int = 0
    desired_state: BalancerDesiredState = field(default_factory=BalancerDesiredState.default)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    chat_template_overrides: dict[str, str] = field(default_factory=dict)
    # None: no monitor socket, the upgrade is refused (as by Paddler).
    monitor: list[MonitorUpdate] | None = None
    # True: the monitor socket serves ``agents`` and ``buffered`` live instead of ``monitor``.
    live_monitor: bool = False
    # What each agent (by id) reports of llama.cpp's extra buffers; only the monitor shows it.
    extra_buffers: dict[str, ExtraBuffers] = field(default_factory=dict)
    # What the balancer counted of each agent's requests (by id); only the monitor shows it.
    traffic: dict[str, AgentTraffic] = field(default_factory=dict)
    # serve's supervision of its local agents, as the live monitor sends it.
    local_agents: list[MonitorLocalAgent] = field(default_factory=list)
    # False: GenerateEmbeddingBatch on the socket gets no answer at all (as from Paddler).
    socket_embeddings: bool = True
    embedding_dimensions: int = 8
    reply: tuple[str, ...] = ("Hello", " from", " the", " fake", ".")
    # Answers conversation requests on the socket instead of ``reply`` (tokens, errors, raw).
    conversation: ChatScript | None = None
    # Pause before each socket frame of an answer, so it streams and can be stopped midway.
    item_delay_s: float = 0.0
    # Sent as the data of every agents stream event instead of the pool (malformed on purpose).
    agents_stream_data: bytes | None = None

    @property
    def embeddings_enabled(self) -> bool:
        return self.desired_state.inference_parameters.enable_embeddings


class FakeBalancer:
    def __init__(
        self, script: FakeScript | None = None, *, inference_port: int = 0, management_port: int = 0
    ) -> None:
        """Ports 0 pick free ones; fixed ports keep addresses shown in screenshots stable."""
        self.script = script or FakeScript()
        self.put_states: list[BalancerDesiredState] = []
        self.embedding_requests: list[tuple[str, GenerateEmbeddingBatchParams]] = []
        self.conversation_requests: list[ContinueFromConversationHistoryParams] = []
        self.stopped_requests: list[str] = []
        self._inference_socket = _bound_socket(inference_port)
        self._management_socket = _bound_socket(management_port)
        self.inference_addr = _addr(self._inference_socket)
        self.management_addr = _addr(self._management_socket)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Condition | None = None
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self) -> FakeBalancer:
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake balancer did not start")
        return self

    def stop(self) -> None:
        """Stop serving; the ports are bound again by the next :meth:`start`."""
        if self._thread is None:
            return
        for server in self._servers:
            server.should_exit = True
        self._notify()
        self._thread.join(10)
        self._thread = None
        self._inference_socket = _bound_socket(_port(self.inference_addr))
        self._management_socket = _bound_socket(_port(self.management_addr))

    def close(self) -> None:
        self.stop()
        self._inference_socket.close()
        self._management_socket.close()

    def __enter__(self) -> FakeBalancer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # Thread-safe changes; open streams send the new state.

    def set_agents(self, agents: list[AgentControllerSnapshot]) -> None:
        self.script.agents = agents
        self._notify()

    def set_buffered(self, buffered: int) -> None:
        self.script.buffered = buffered
        self._notify()

    def set_extra_buffers(self, agent_id: str, verdict: ExtraBuffers | None) -> None:
        if verdict is None:
            self.script.extra_buffers.pop(agent_id, None)
        else:
            self.script.extra_buffers[agent_id] = verdict
        self._notify()

    def set_local_agents(self, local_agents: list[MonitorLocalAgent]) -> None:
        self.script.local_agents = local_agents
        self._notify()

    def push_monitor_update(self, update: MonitorUpdate) -> None:
        assert self.script.monitor is not None
        self.script.monitor.append(update)
        self._notify()

    def _notify(self) -> None:
        loop, changed = self._loop, self._changed
        if loop is None or changed is None or loop.is_closed():
            return

        async def wake() -> None:
            async with changed:
                changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(wake(), loop)

    # The servers.

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Condition()
        self._servers = [
            _server(self._inference_app()),
            _server(self._management_app()),
        ]
        tasks = [
            asyncio.create_task(self._servers[0].serve(sockets=[self._inference_socket])),
            asyncio.create_task(self._servers[1].serve(sockets=[self._management_socket])),
        ]
        while not all(server.started for server in self._servers):
            await asyncio.sleep(0.01)
        ready.set()
        await asyncio.gather(*tasks)
        self._loop = None

    @property
    def _stopping(self) -> bool:
        return any(server.should_exit for server in self._servers)

    async def _changes(self) -> AsyncIterator[None]:
        """Once now, then after each change, until the fake stops."""
        changed = self._changed
        assert changed is not None
        while not self._stopping:
            yield
            async with changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), 0.5)

    def _inference_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/health", _health),
                Route("/api/v1/generate_embedding_batch", self._embedding_batch, methods=["POST"]),
                Route(
                    "/api/v1/continue_from_conversation_history",
                    self._conversation,
                    methods=["POST"],
                ),
                WebSocketRoute("/api/v1/inference_socket", self._inference_socket_route),
            ]
        )

    def _management_app(self) -> Starlette:
        routes: list[Route | WebSocketRoute] = [
            Route("/health", _health),
            Route("/api/v1/agents", self._agents),
            Route("/api/v1/agents/stream", self._agents_stream),
            Route("/api/v1/buffered_requests", self._buffered),
            Route("/api/v1/buffered_requests/stream", self._buffered_stream),
            Route("/api/v1/balancer_desired_state", self._desired_state, methods=["GET", "PUT"]),
            Route("/api/v1/balancer_applicable_state", self._applicable_state),
            Route("/api/v1/agent/{agent_id}/model_metadata", self._model_metadata),
            Route("/api/v1/agent/{agent_id}/chat_template_override", self._chat_template_override),
        ]
        if self.script.monitor is not None or self.script.live_monitor:
            routes.append(WebSocketRoute("/api/v1/monitor_socket", self._monitor_socket))
        return Starlette(routes=routes)

    # Management.

    def _pool(self) -> AgentControllerPoolSnapshot:
        return AgentControllerPoolSnapshot(agents=list(self.script.agents))

    async def _agents(self, _: Request) -> Response:
        return _json(self._pool(), AgentControllerPoolSnapshot)

    async def _agents_stream(self, _: Request) -> Response:
        garbage = self.script.agents_stream_data
        if garbage is not None:
            return self._sse(lambda: garbage)
        return self._sse(lambda: _encode(self._pool(), AgentControllerPoolSnapshot))

    def _buffered_snapshot(self) -> bytes:
        snapshot = BufferedRequestsSnapshot(buffered_requests_current=self.script.buffered)
        return _encode(snapshot, BufferedRequestsSnapshot)

    async def _buffered(self, _: Request) -> Response:
        return Response(self._buffered_snapshot(), media_type="application/json")

    async def _buffered_stream(self, _: Request) -> Response:
        return self._sse(self._buffered_snapshot)

    def _sse(self, snapshot: Callable[[], bytes]) -> Response:
        async def events() -> AsyncIterator[bytes]:
            last = None
            async for _ in self._changes():
                current = snapshot()
                if current != last:
                    last = current
                    yield b"data: " + current + b"\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _desired_state(self, request: Request) -> Response:
        if request.method == "PUT":
            try:
                state = codec.decode(codec.adapter_for(BalancerDesiredState), await request.body())
            except ValueError as error:
                return PlainTextResponse(str(error), status_code=400)
            invalid = state.inference_parameters.validation_error()
            if invalid is not None:
                return PlainTextResponse(invalid, status_code=400)
            self.put_states.append(state)
            self.script.desired_state = state
            return Response(status_code=204)
        return _json(self.script.desired_state, BalancerDesiredState)

    async def _applicable_state(self, _: Request) -> Response:
        state = self.script.desired_state.to_agent_desired_state()
        return Response(
            codec.encode(codec.adapter_for(type(state)), state), media_type="application/json"
        )

    async def _model_metadata(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        if agent_id not in {agent.id for agent in self.script.agents}:
            return Response(status_code=404)
        metadata = self.script.metadata.get(agent_id)
        if metadata is None:
            return Response(b"null", media_type="application/json")
        return _json(ModelMetadata(metadata=metadata), ModelMetadata)

    async def _chat_template_override(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        content = self.script.chat_template_overrides.get(agent_id)
        if content is None:
            return Response(b"null", media_type="application/json")
        return _json(ChatTemplate(content=content), ChatTemplate)

    def _live_monitor_update(self) -> MonitorUpdate:
        """The agents and buffer as the real balancer's monitor socket shows them."""
        agents = []
        for agent in self.script.agents:
            verdict = self.script.extra_buffers.get(agent.id)
            traffic = self.script.traffic.get(agent.id, AgentTraffic())
            agents.append(
                monitor_agent(agent).model_copy(
                    update={
                        "extra_buffers": verdict.enabled if verdict else None,
                        "extra_buffers_reason": verdict.reason if verdict else None,
                        "prompt_tokens": traffic.prompt_tokens,
                        "cached_prompt_tokens": traffic.cached_prompt_tokens,
                        "routed": traffic.routed,
                        "prompt_cache_ram": traffic.prompt_cache_ram,
                    }
                )
            )
        return MonitorUpdate(
            server_time=LIVE_MONITOR_TIME,
            agents=agents,
            buffer=MonitorBuffer(buffered=self.script.buffered, max_buffered=30, timeout_ms=10_000),
            requests=[],
            timeouts=MonitorTimeouts(
                buffered_request_timeout_ms=10_000, inference_item_timeout_ms=30_000
            ),
            events=[],
            local_agents=list(self.script.local_agents),
        )

    async def _monitor_socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        sent = 0
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            async for _ in self._changes():
                if self.script.live_monitor:
                    await websocket.send_text(
                        encode_monitor_update(self._live_monitor_update()).decode()
                    )
                    continue
                updates = self.script.monitor or []
                # Count what was sent, not the list's length: a test may push while sending.
                for update in updates[sent:]:
                    await websocket.send_text(encode_monitor_update(update).decode())
                    sent += 1
            await websocket.close()

    # Inference.

    def _embedding_messages(
        self, request_id: str, params: GenerateEmbeddingBatchParams
    ) -> list[InferenceServerMessage]:
        if not self.script.embeddings_enabled:
            return [
                ErrorEnvelope(
                    request_id=request_id,
                    error=ErrorDetails(code=501, description=EMBEDDINGS_DISABLED),
                )
            ]
        names = [agent.name for agent in self.script.agents] or [None]
        messages: list[InferenceServerMessage] = []
        for index, document in enumerate(params.input_batch):
            vector = fake_embedding(document.content, self.script.embedding_dimensions)
            embedding = Embedding(
                embedding=normalize(vector, params.normalization_method),
                normalization_method=params.normalization_method,
                pooling_type="Last",
                source_document_id=document.id,
            )
            messages.append(
                ResponseEnvelope(
                    generated_by=names[index % len(names)],
                    request_id=request_id,
                    response=EmbeddingResponse(value=EmbeddingProduced(value=embedding)),
                )
            )
        messages.append(
            ResponseEnvelope(
                request_id=request_id, response=EmbeddingResponse(value=EmbeddingDone())
            )
        )
        return messages

    def _reply_messages(self, request_id: str) -> list[InferenceServerMessage]:
        name = self.script.agents[0].name if self.script.agents else None
        messages: list[InferenceServerMessage] = [
            ResponseEnvelope(
                generated_by=name,
                request_id=request_id,
                response=GeneratedToken(value=ContentToken(value=token)),
            )
            for token in self.script.reply
        ]
        usage = TokenUsage.zero().model_copy(update={"content_tokens": len(self.script.reply)})
        messages.append(
            ResponseEnvelope(
                generated_by=name,
                request_id=request_id,
                response=GeneratedToken(value=Done(usage=usage)),
            )
        )
        return messages

    def _conversation_frames(
        self, request_id: str, params: ContinueFromConversationHistoryParams
    ) -> list[str]:
        self.conversation_requests.append(params)
        if self.script.conversation is None:
            messages = self._reply_messages(request_id)
            return [encode_inference_server_message(message).decode() for message in messages]
        name = self.script.agents[0].name if self.script.agents else None
        frames: list[str] = []
        for item in self.script.conversation(params):
            if isinstance(item, RawFrame):
                frames.append(item.text)
                continue
            message: InferenceServerMessage = (
                ErrorEnvelope(request_id=request_id, error=item)
                if isinstance(item, ErrorDetails)
                else ResponseEnvelope(
                    generated_by=name, request_id=request_id, response=GeneratedToken(value=item)
                )
            )
            frames.append(encode_inference_server_message(message).decode())
        return frames

    async def _embedding_batch(self, request: Request) -> Response:
        params = codec.decode(codec.adapter_for(GenerateEmbeddingBatchParams), await request.body())
        self.embedding_requests.append(("http", params))
        if not self.script.embeddings_enabled:
            return PlainTextResponse(EMBEDDINGS_DISABLED, status_code=501)
        return _ndjson(self._embedding_messages("http", params))

    async def _conversation(self, _: Request) -> Response:
        return _ndjson(self._reply_messages("http"))

    async def _inference_socket_route(self, websocket: WebSocket) -> None:
        await websocket.accept()
        sending = asyncio.Lock()
        streams: dict[str, asyncio.Task[None]] = {}

        async def stream(frames: list[str]) -> None:
            for frame in frames:
                if self.script.item_delay_s:
                    await asyncio.sleep(self.script.item_delay_s)
                async with sending:
                    await websocket.send_text(frame)

        def forget(request_id: str) -> Callable[[asyncio.Task[None]], None]:
            def done(task: asyncio.Task[None]) -> None:
                if streams.get(request_id) is task:
                    del streams[request_id]

            return done

        try:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while True:
                    message = decode_inference_client_message(await websocket.receive_text())
                    if isinstance(message, ClientNotificationEnvelope):
                        self.stopped_requests.append(message.value.value)
                        stopped = streams.pop(message.value.value, None)
                        if stopped is not None:
                            stopped.cancel()
                        continue
                    if not isinstance(message, RequestEnvelope):
                        continue
                    request = message.request
                    if isinstance(request, GenerateEmbeddingBatch):
                        self.embedding_requests.append(("socket", request.value))
                        if not self.script.socket_embeddings:
                            continue
                        replies = self._embedding_messages(message.id, request.value)
                        frames = [encode_inference_server_message(r).decode() for r in replies]
                    elif isinstance(request, ContinueFromConversationHistory):
                        frames = self._conversation_frames(message.id, request.value)
                    else:
                        continue
                    streams[message.id] = asyncio.create_task(stream(frames))
                    streams[message.id].add_done_callback(forget(message.id))
        finally:
            for task in streams.values():
                task.cancel()


async def _health(_: Request) -> Response:
    return PlainTextResponse("OK")


def _encode(value: object, tp: object) -> bytes:
    return codec.encode(codec.adapter_for(tp), value)


def _json(value: object, tp: object) -> Response:
    return Response(_encode(value, tp), media_type="application/json")


def _ndjson(messages: list[InferenceServerMessage]) -> Response:
    body = b"".join(encode_inference_server_message(message) + b"\n" for message in messages)
    return Response(body, media_type="application/x-ndjson")


def _server(app: Starlette) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
        ws="websockets-sansio",
    )
    return uvicorn.Server(config)


def _bound_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _addr(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def _port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])
