"""The monitor socket (``/api/v1/monitor_socket``): a paddler-tui extension to Paddler.

Paddler exposes only aggregate counts; the TUI shows every slot, request and timeout live.
Each frame is one :class:`MonitorUpdate`: the whole current picture (small: agents and
in-flight requests) plus the events since the previous frame. Times are Unix milliseconds of the
balancer's clock, and ``server_time`` lets a client measure ages without trusting its own clock.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_issue import AgentIssue
from paddler_tui.protocol.agent_socket import PromptCacheRam
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
# A local agent of ``serve``: its process runs, waits out a backoff before its restart, or
# crashed too often (a crash loop) and is no longer restarted.
LocalAgentState = Literal["running", "restarting", "gave_up"]


class RoutingCounts(LenientWireModel):
    """Requests the balancer sent to one agent, by why it was chosen.

    ``prefix_hit``: the agent held the longest known prefix of the request and had a free slot.
    ``fallback``: some agent held a prefix, but it had no free slot or was busier than the
    least busy one by more than the allowed imbalance, so the least busy agent took it.
    ``least_busy``: no agent held a prefix (or routing is ``least-busy``).
    """

    prefix_hit: int = 0
    fallback: int = 0
    least_busy: int = 0


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
    # Since the balancer started, over the generation requests this agent finished: their
    # prompt tokens, and how many of those a cache held (its slots' KV or its RAM prompt cache).
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    # What the agent's prompt cache in host memory keeps now; None until a paddler-tui agent
    # with a loaded model reports it.
    prompt_cache_ram: PromptCacheRam | None = None
    # How the balancer chose this agent for its requests.
    routed: RoutingCounts = Field(default_factory=RoutingCounts)


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


class MonitorLocalAgent(LenientWireModel):
    """An agent process that ``serve`` runs and restarts (a paddler-tui extension); it is listed
    whether or not it is registered with the balancer at the moment."""

    name: str
    pid: int | None = None
    state: LocalAgentState = "running"
    # Restarts so far, and how the last process ended (``killed by SIGSEGV``); None before any.
    restarts: int = 0
    last_exit: str | None = None
    # While restarting: how long until the next start.
    next_restart_in_ms: int | None = None
    log_file: str | None = None


class MonitorUpdate(LenientWireModel):
    server_time: int
    agents: list[MonitorAgent]
    buffer: MonitorBuffer
    requests: list[MonitorRequest]
    timeouts: MonitorTimeouts
    events: list[MonitorEvent]
    # Events a slow subscriber missed because its backlog was full.
    events_dropped: int = 0
    # The agent processes ``serve`` supervises; empty for a plain balancer (and older ones).
    local_agents: list[MonitorLocalAgent] = Field(default_factory=list)


_UPDATE = codec.adapter_for(MonitorUpdate)


def encode_monitor_update(update: MonitorUpdate) -> bytes:
    return codec.encode(_UPDATE, update)


def decode_monitor_update(data: bytes | str) -> MonitorUpdate:
    """Raise :class:`~paddler_tui.protocol.errors.ProtocolError` for bad JSON or shape."""
    result: MonitorUpdate = codec.decode(_UPDATE, data)
    return result
