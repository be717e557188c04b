"""The registered agents and the balancer-side accounting of their slots."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.server.balancer.agent_controller import (
    AgentController,
    BalancerShuttingDownError,
)
from paddler_tui.server.balancer.change_signal import ChangeSignal
from paddler_tui.server.balancer.routing.policy import (
    Candidate,
    Routing,
    RoutingDecision,
    choose,
    pin,
    within_imbalance,
)
from paddler_tui.server.balancer.routing.prefix_chain import PrefixChain


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
    def __init__(self, routing: Routing | None = None) -> None:
        self.routing = routing if routing is not None else Routing()
        self._agents: dict[str, AgentController] = {}
        # Any change to agents or slots: registration, removal, status, claim, release.
        self.changed = ChangeSignal()
        # Set at shutdown, so watchers of ``changed`` (SSE streams) know to end.
        self.closed = False
        # Routing decisions over the balancer's life, those of agents since gone included.
        self.decisions: Counter[RoutingDecision] = Counter()

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

    def try_claim(self, chain: PrefixChain | None = None) -> SlotLease | None:
        """Claim a slot for a request with this prefix chain (None: an embedding request, sent to
        the least busy agent and not counted as routed); None when no slot is free.

        Least busy is by absolute count. The event loop is single-threaded, so choosing and
        claiming cannot race.
        """
        agents = self._routable()
        picked = choose(self._candidates(agents, chain), self.routing.imbalance)
        if picked is None:
            return None
        index, decision = picked
        return self._claim(agents[index], chain, decision)

    def claim_on(self, agent: AgentController, chain: PrefixChain | None) -> SlotLease | None:
        """Claim a slot on the agent a request waited for (a prefix hit); None if none is free."""
        if not agent.has_free_slot:
            return None
        return self._claim(agent, chain, "prefix_hit")

    def wait_target(self, chain: PrefixChain | None) -> AgentController | None:
        """The agent a request that must wait should wait for; None: whichever frees a slot."""
        if chain is None or not self.routing.prefix_aware:
            return None
        agents = self._routable()
        index = pin(self._candidates(agents, chain), self.routing.imbalance)
        return agents[index] if index is not None else None

    def keeps_waiter(self, agent: AgentController, ahead: int) -> bool:
        """Whether a request may go on waiting for ``agent`` with ``ahead`` requests waiting for
        it before its own: the agent is still here with slots, and its load up to that request
        stays within the imbalance."""
        if self._agents.get(agent.id) is not agent or not agent.routable:
            return False
        least = min(candidate.load for candidate in self._routable())
        return within_imbalance(agent.slots_processing + ahead, least, self.routing.imbalance)

    def _routable(self) -> list[AgentController]:
        return [agent for agent in self._agents.values() if agent.routable]

    def _candidates(
        self, agents: list[AgentController], chain: PrefixChain | None
    ) -> list[Candidate]:
        prefixes = chain if chain and self.routing.prefix_aware else ()
        return [
            Candidate(
                free=agent.has_free_slot,
                load=agent.load,
                depth=agent.prefixes.match_depth(prefixes) if prefixes else 0,
            )
            for agent in agents
        ]

    def _claim(
        self, agent: AgentController, chain: PrefixChain | None, decision: RoutingDecision
    ) -> SlotLease:
        agent.slots_processing += 1
        if chain is not None:
            agent.routed[decision] += 1
            self.decisions[decision] += 1
            if self.routing.prefix_aware:
                agent.prefixes.record(chain)
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
