"""The monitor picture from Paddler's own SSE streams, for a balancer without the monitor socket.

Paddler streams agent snapshots and the buffered count only. This builds :class:`MonitorUpdate`\\ s
from them so the screen has one model: no in-flight requests, no buffer limit or timeouts (left
at 0, which the view reads as unknown), and join/leave events found by comparing snapshots.
"""

from __future__ import annotations

from paddler_tui.protocol.agent_status import (
    AgentControllerPoolSnapshot,
    AgentControllerSnapshot,
)
from paddler_tui.protocol.monitor import (
    MonitorAgent,
    MonitorBuffer,
    MonitorEvent,
    MonitorTimeouts,
    MonitorUpdate,
)


def monitor_agent(agent: AgentControllerSnapshot) -> MonitorAgent:
    return MonitorAgent(
        id=agent.id,
        name=agent.name,
        model_path=agent.model_path,
        state_application_status=agent.state_application_status,
        slots_total=agent.slots_total,
        slots_busy=agent.slots_processing,
        download_current=agent.download_current,
        download_total=agent.download_total,
        download_filename=agent.download_filename,
        issues=agent.issues,
    )


class FallbackMonitor:
    """Folds SSE snapshots into updates; ``now_ms`` stamps them (Paddler sends no time)."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentControllerSnapshot] | None = None
        self._buffered = 0

    def agents(self, snapshot: AgentControllerPoolSnapshot, now_ms: int) -> MonitorUpdate:
        current = {agent.id: agent for agent in snapshot.agents}
        events: list[MonitorEvent] = []
        if self._agents is not None:
            for agent_id, agent in current.items():
                if agent_id not in self._agents:
                    events.append(_membership(agent, "joined", now_ms))
            for agent_id, agent in self._agents.items():
                if agent_id not in current:
                    events.append(_membership(agent, "left", now_ms))
        self._agents = current
        return self._update(now_ms, events)

    def buffered(self, count: int, now_ms: int) -> MonitorUpdate:
        self._buffered = count
        return self._update(now_ms, [])

    def _update(self, now_ms: int, events: list[MonitorEvent]) -> MonitorUpdate:
        return MonitorUpdate(
            server_time=now_ms,
            agents=[monitor_agent(agent) for agent in (self._agents or {}).values()],
            buffer=MonitorBuffer(buffered=self._buffered, max_buffered=0, timeout_ms=0),
            requests=[],
            timeouts=MonitorTimeouts(buffered_request_timeout_ms=0, inference_item_timeout_ms=0),
            events=events,
        )


def _membership(agent: AgentControllerSnapshot, verb: str, now_ms: int) -> MonitorEvent:
    return MonitorEvent(
        at=now_ms,
        kind="agent_joined" if verb == "joined" else "agent_left",
        message=f"{agent.name or agent.id} {verb}",
        agent_id=agent.id,
        agent_name=agent.name,
    )
