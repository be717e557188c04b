"""Heartbeats on the agent socket: WebSocket pings both ways, so a silent link is noticed.

A partition closes nothing: without pings a dead link looks like an idle one until TCP gives up,
many minutes later. Each side pings every ``interval_ms`` and declares the link dead when a pong
is ``timeout_ms`` late, so a silent link is found within interval + timeout (7 s by default).
The balancer then fails the link's in-flight requests with Paddler's 502 and drops the agent;
the agent closes its side and redials.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_INTERVAL_MS = 2000
DEFAULT_TIMEOUT_MS = 5000


@dataclass(frozen=True, kw_only=True)
class Heartbeat:
    interval_ms: int = DEFAULT_INTERVAL_MS
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    @property
    def interval_s(self) -> float:
        return self.interval_ms / 1000

    @property
    def timeout_s(self) -> float:
        return self.timeout_ms / 1000
