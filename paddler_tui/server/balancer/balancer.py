"""The balancer's shared parts, wired once and handed to every service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from paddler_tui.net_address import HostPort
from paddler_tui.protocol.monitor import MonitorLocalAgent
from paddler_tui.server.balancer.agent_pool import AgentPool
from paddler_tui.server.balancer.cluster_state import ClusterState
from paddler_tui.server.balancer.metrics import Gauges
from paddler_tui.server.balancer.monitor_hub import MonitorHub
from paddler_tui.server.balancer.request_body import DEFAULT_BODY_LIMIT
from paddler_tui.server.balancer.request_forwarder import RequestForwarder
from paddler_tui.server.balancer.routing.policy import Routing
from paddler_tui.server.balancer.slot_buffer import SlotBuffer
from paddler_tui.server.balancer.state_database import StateDatabase
from paddler_tui.server.heartbeat import Heartbeat


@dataclass(frozen=True, kw_only=True)
class BalancerSettings:
    inference_addr: HostPort
    management_addr: HostPort
    compat_openai_addr: HostPort | None = None
    state_database: str = "memory://"
    max_buffered_requests: int = 30
    buffered_request_timeout_ms: int = 10000
    inference_item_timeout_ms: int = 30000
    routing: Routing = field(default_factory=Routing)
    inference_cors_allowed_hosts: tuple[str, ...] = ()
    management_cors_allowed_hosts: tuple[str, ...] = ()
    statsd_addr: HostPort | None = None
    statsd_prefix: str = "paddler_"
    statsd_reporting_interval_ms: int = 10000
    body_limit: int = DEFAULT_BODY_LIMIT
    agent_heartbeat: Heartbeat = field(default_factory=Heartbeat)
    # Required as `Authorization: Bearer` on every route but /health; kept out of reprs and logs.
    api_key: str | None = field(default=None, repr=False)


@dataclass
class Balancer:
    settings: BalancerSettings
    database: StateDatabase
    pool: AgentPool = field(init=False)
    buffer: SlotBuffer = field(init=False)
    forwarder: RequestForwarder = field(init=False)
    cluster: ClusterState = field(init=False)
    monitor: MonitorHub = field(init=False)
    # Set when shutdown begins; the inference sockets then close with Paddler's 1001.
    stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    # The tasks serving open inference sockets, so shutdown can wait for their close frames.
    socket_sessions: set[asyncio.Task[None]] = field(init=False, default_factory=set)
    # The agent processes supervised next to this balancer (``serve`` sets it; the balancer
    # knows nothing of them), for the monitor socket; None for a plain balancer.
    local_agents: Callable[[], list[MonitorLocalAgent]] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.pool = AgentPool(self.settings.routing)
        self.monitor = MonitorHub()
        self.buffer = SlotBuffer(
            self.pool,
            max_buffered=self.settings.max_buffered_requests,
            timeout_ms=self.settings.buffered_request_timeout_ms,
        )
        self.forwarder = RequestForwarder(
            self.buffer,
            item_timeout_ms=self.settings.inference_item_timeout_ms,
            monitor=self.monitor,
        )
        self.cluster = ClusterState(self.database, self.pool)

    @property
    def item_timeout_s(self) -> float:
        """The longest wait for an agent's next item, and for a client to take one."""
        return self.settings.inference_item_timeout_ms / 1000

    def gauges(self) -> Gauges:
        return Gauges(
            slots_processing=self.pool.slots_processing,
            slots_total=self.pool.slots_total,
            requests_buffered=self.buffer.buffered,
        )
