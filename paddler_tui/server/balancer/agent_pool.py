"""The registered agents and the balancer-side accounting of their slots."""

from __future__ import annotations

from dataclasses import dataclass, field

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.server.balancer.agent_controller import (
    AgentController,
    BalancerShuttingDownError,
)
from paddler_tui.server.balancer.change_signal import ChangeSignal


class AgentAlreadyRegisteredError(Exception):
    pass


@dataclass
class SlotLease:
    """One claimed slot on one agent; released exactly once."""

    pool: AgentPool
    agent: AgentController
    released: bool = field(default=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.agent.slots_processing -= 1
            self.pool.changed.notify()


class AgentPool:
    def __init__(self) -> None:
        self._agents: dict[str, AgentController] = {}
        # Any change to agents or slots: registration, removal, status, claim, release.
        self.changed = ChangeSignal()
        # Set at shutdown, so watchers of ``changed`` (SSE streams) know to end.
        self.closed = False

    def __contains__(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def __len__(self) -> int:
        return len(self._agents)

    def agents(self) -> list[AgentController]:
        return list(self._agents.values())

    def get(self, agent_id: str) -> AgentController | None:
        return self._agents.get(agent_id)

    def register(self, agent: AgentController) -> None:
        if agent.id in self._agents:
            raise AgentAlreadyRegisteredError(agent.id)
        self._agents[agent.id] = agent
        self.changed.notify()

    def remove(self, agent: AgentController) -> None:
        if self._agents.get(agent.id) is agent:
            del self._agents[agent.id]
            agent.disconnect()
            self.changed.notify()

    def shut_down(self) -> None:
        """Every request waiting on an agent ends with "balancer is shutting down"."""
        self.closed = True
        for agent in self._agents.values():
            agent.interrupt(BalancerShuttingDownError())
        self.changed.notify()

    def try_claim(self) -> SlotLease | None:
        """Claim a slot on the least busy agent that has one free (by absolute count).

        The event loop is single-threaded, so choosing and claiming cannot race.
        """
        candidates = [agent for agent in self._agents.values() if agent.has_free_slot]
        if not candidates:
            return None
        agent = min(candidates, key=lambda candidate: candidate.slots_processing)
        agent.slots_processing += 1
        self.changed.notify()
        return SlotLease(self, agent)

    @property
    def slots_total(self) -> int:
        return sum(agent.slots_total for agent in self._agents.values())

    @property
    def slots_processing(self) -> int:
        return sum(agent.slots_processing for agent in self._agents.values())

    def snapshot(self) -> AgentControllerPoolSnapshot:
        return AgentControllerPoolSnapshot(agents=[a.snapshot() for a in self._agents.values()])
