"""The monitor socket (``/api/v1/monitor_socket``): a paddler-tui extension to Paddler.

Paddler exposes only aggregate counts; the TUI shows every slot, request and timeout live.
Each frame is one :class:`MonitorUpdate`: the whole current picture (small: agents and
in-flight requests) plus the events since the previous frame. Times are Unix milliseconds of the
balancer's clock, and ``server_time`` lets a client measure ages without trusting its own clock.
"""

from __future__ import annotations

from typing import Literal

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_issue import AgentIssue
from paddler_tui.protocol.agent_status import AgentStateApplicationStatus
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.protocol.wire import LenientWireModel

RequestKind = Literal["conversation", "raw_prompt", "embedding"]
RequestPhase = Literal["buffered", "running", "draining"]
MonitorEventKind = Literal[
    "agent_joined",
    "agent_left",
    "request_completed",
    "buffer_overflow",
    "buffer_timeout",
    "item_timeout",
    "agent_lost",
    "client_cancelled",
    "shutting_down",
]


class MonitorAgent(LenientWireModel):
    id: str
    name: str | None
    model_path: str | None
    state_application_status: AgentStateApplicationStatus
    slots_total: int
    slots_busy: int
    download_current: int
    download_total: int
    download_filename: str | None
    issues: list[AgentIssue]
    # Whether llama.cpp repacks weights into extra buffer types on this agent's host, and why;
    # None until the agent reports it (or for an agent that never does).
    extra_buffers: bool | None = None
    extra_buffers_reason: str | None = None


class MonitorBuffer(LenientWireModel):
    buffered: int
    max_buffered: int
    timeout_ms: int


class MonitorRequest(LenientWireModel):
    id: str
    kind: RequestKind
    phase: RequestPhase
    agent_id: str | None
    agent_name: str | None
    started_at: int
    last_item_at: int
    tokens: int


class MonitorTimeouts(LenientWireModel):
    buffered_request_timeout_ms: int
    inference_item_timeout_ms: int


class MonitorEvent(LenientWireModel):
    at: int
    kind: MonitorEventKind
    message: str
    request_id: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    usage: TokenUsage | None = None
    tokens_per_second: float | None = None


class MonitorUpdate(LenientWireModel):
    server_time: int
    agents: list[MonitorAgent]
    buffer: MonitorBuffer
    requests: list[MonitorRequest]
    timeouts: MonitorTimeouts
    events: list[MonitorEvent]
    # Events a slow subscriber missed because its backlog was full.
    events_dropped: int = 0


_UPDATE = codec.adapter_for(MonitorUpdate)


def encode_monitor_update(update: MonitorUpdate) -> bytes:
    return codec.encode(_UPDATE, update)


def decode_monitor_update(data: bytes | str) -> MonitorUpdate:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    result: MonitorUpdate = codec.decode(_UPDATE, data)
    return result
