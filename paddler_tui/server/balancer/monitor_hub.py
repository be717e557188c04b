"""What the monitor socket shows: in-flight requests and an event feed, kept cheaply.

The forwarder reports each request's progress here (a dict update per token); subscribers are
woken through a :class:`ChangeSignal` and build their frames at their own pace, so a slow
subscriber costs inference nothing and its event backlog is bounded.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from paddler_tui.protocol.monitor import (
    MonitorEvent,
    MonitorEventKind,
    MonitorRequest,
    RequestKind,
    RequestPhase,
)
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.change_signal import ChangeSignal

EVENT_HISTORY = 200


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Tracked:
    id: str
    kind: RequestKind
    phase: RequestPhase
    started_at: int
    last_item_at: int
    agent: AgentController | None = None
    tokens: int = 0

    def snapshot(self) -> MonitorRequest:
        return MonitorRequest(
            id=self.id,
            kind=self.kind,
            phase=self.phase,
            agent_id=self.agent.id if self.agent else None,
            agent_name=self.agent.name if self.agent else None,
            started_at=self.started_at,
            last_item_at=self.last_item_at,
            tokens=self.tokens,
        )


class MonitorHub:
    def __init__(self) -> None:
        self._requests: dict[str, _Tracked] = {}
        # Every event ever, numbered, the newest EVENT_HISTORY kept for late subscribers.
        self.events: deque[tuple[int, MonitorEvent]] = deque(maxlen=EVENT_HISTORY)
        self.event_count = 0
        self.changed = ChangeSignal()

    def requests(self) -> list[MonitorRequest]:
        return [tracked.snapshot() for tracked in self._requests.values()]

    def buffered(self, request_id: str, kind: RequestKind) -> None:
        at = now_ms()
        self._requests[request_id] = _Tracked(request_id, kind, "buffered", at, at)
        self.changed.notify()

    def running(self, request_id: str, agent: AgentController) -> None:
        tracked = self._requests.get(request_id)
        if tracked is not None:
            tracked.phase, tracked.agent, tracked.last_item_at = "running", agent, now_ms()
            self.changed.notify()

    def item(self, request_id: str, *, token: bool) -> None:
        tracked = self._requests.get(request_id)
        if tracked is not None:
            tracked.last_item_at = now_ms()
            tracked.tokens += token
            self.changed.notify()

    def draining(self, request_id: str) -> None:
        tracked = self._requests.get(request_id)
        if tracked is not None:
            tracked.phase = "draining"
            self.changed.notify()

    def finished(
        self,
        request_id: str,
        kind: MonitorEventKind | None = None,
        message: str = "",
        usage: TokenUsage | None = None,
    ) -> None:
        """The request is gone; ``kind`` is the event it leaves in the feed, if any."""
        tracked = self._requests.pop(request_id, None)
        if kind is not None:
            agent = tracked.agent if tracked else None
            rate = None
            if kind == "request_completed" and tracked is not None and usage is not None:
                seconds = max(now_ms() - tracked.started_at, 1) / 1000
                rate = round(usage.completion_tokens / seconds, 1)
            self.event(
                kind,
                message,
                request_id=request_id,
                agent=agent,
                usage=usage,
                tokens_per_second=rate,
            )
        self.changed.notify()

    def event(
        self,
        kind: MonitorEventKind,
        message: str,
        *,
        request_id: str | None = None,
        agent: AgentController | None = None,
        usage: TokenUsage | None = None,
        tokens_per_second: float | None = None,
    ) -> None:
        self.event_count += 1
        self.events.append(
            (
                self.event_count,
                MonitorEvent(
                    at=now_ms(),
                    kind=kind,
                    message=message,
                    request_id=request_id,
                    agent_id=agent.id if agent else None,
                    agent_name=agent.name if agent else None,
                    usage=usage,
                    tokens_per_second=tokens_per_second,
                ),
            )
        )
        self.changed.notify()
