"""The management service: agents, buffer, desired state, agent queries, live streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from paddler_tui.client.framing import ServerSentEvents
from paddler_tui.client.http import HttpClient, decode, encode
from paddler_tui.protocol.agent_status import (
    AgentControllerPoolSnapshot,
    BufferedRequestsSnapshot,
    ModelMetadata,
)
from paddler_tui.protocol.desired_state import (
    AgentDesiredState,
    BalancerDesiredState,
    ChatTemplate,
)


class ManagementClient:
    def __init__(self, addr: str, *, api_key: str | None = None) -> None:
        # Kept for the monitor socket, which is not an HTTP request of this client.
        self.api_key = api_key
        self._http = HttpClient(addr, api_key=api_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def health(self) -> str:
        return (await self._http.request("GET", "/health")).text

    async def agents(self) -> AgentControllerPoolSnapshot:
        response = await self._http.request("GET", "/api/v1/agents")
        result: AgentControllerPoolSnapshot = decode(AgentControllerPoolSnapshot, response.content)
        return result

    def agents_stream(self) -> AsyncIterator[AgentControllerPoolSnapshot]:
        return self._events("/api/v1/agents/stream", AgentControllerPoolSnapshot)

    async def buffered_requests(self) -> BufferedRequestsSnapshot:
        response = await self._http.request("GET", "/api/v1/buffered_requests")
        result: BufferedRequestsSnapshot = decode(BufferedRequestsSnapshot, response.content)
        return result

    def buffered_requests_stream(self) -> AsyncIterator[BufferedRequestsSnapshot]:
        return self._events("/api/v1/buffered_requests/stream", BufferedRequestsSnapshot)

    async def desired_state(self) -> BalancerDesiredState:
        response = await self._http.request("GET", "/api/v1/balancer_desired_state")
        result: BalancerDesiredState = decode(BalancerDesiredState, response.content)
        return result

    async def put_desired_state(self, state: BalancerDesiredState) -> None:
        body = encode(BalancerDesiredState, state)
        await self._http.request("PUT", "/api/v1/balancer_desired_state", content=body)

    async def applicable_state(self) -> AgentDesiredState | None:
        response = await self._http.request("GET", "/api/v1/balancer_applicable_state")
        result: AgentDesiredState | None = decode(AgentDesiredState | None, response.content)
        return result

    async def chat_template_override(self, agent_id: str) -> ChatTemplate | None:
        path = f"/api/v1/agent/{agent_id}/chat_template_override"
        response = await self._http.request("GET", path)
        result: ChatTemplate | None = decode(ChatTemplate | None, response.content)
        return result

    async def model_metadata(self, agent_id: str) -> ModelMetadata | None:
        response = await self._http.request("GET", f"/api/v1/agent/{agent_id}/model_metadata")
        result: ModelMetadata | None = decode(ModelMetadata | None, response.content)
        return result

    async def metrics(self) -> str:
        return (await self._http.request("GET", "/metrics")).text

    async def _events(self, path: str, tp: Any) -> AsyncIterator[Any]:
        events = ServerSentEvents()
        async with self._http.stream("GET", path) as chunks:
            async for chunk in chunks:
                for data in events.feed(chunk):
                    yield decode(tp, data)
