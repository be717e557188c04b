"""Desired state → applicable state → every agent (reconciliation), and the cluster's mode."""

from __future__ import annotations

import asyncio
import logging

from paddler_tui.protocol.desired_state import AgentDesiredState, BalancerDesiredState
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.agent_pool import AgentPool
from paddler_tui.server.balancer.change_signal import ChangeSignal
from paddler_tui.server.balancer.state_database import StateDatabase

logger = logging.getLogger(__name__)

RECONCILE_RETRY_S = 1.0


class ClusterState:
    def __init__(self, database: StateDatabase, pool: AgentPool) -> None:
        self.database = database
        self.pool = pool
        self.applicable: AgentDesiredState | None = None
        # Token generation switched on or off (embeddings mode changed).
        self.mode_changed = ChangeSignal()

    @property
    def token_generation_enabled(self) -> bool:
        return self.applicable is None or not self.applicable.inference_parameters.enable_embeddings

    @property
    def embeddings_enabled(self) -> bool:
        return (
            self.applicable is not None and self.applicable.inference_parameters.enable_embeddings
        )

    async def store(self, state: BalancerDesiredState) -> None:
        """Persist a new desired state, then send it to every agent (even if unchanged)."""
        await self.database.store(state)
        self._apply(state)

    async def run(self) -> None:
        """Make the stored state applicable at startup, retrying until the store answers."""
        while True:
            try:
                self._apply(await self.database.read())
                return
            except Exception as error:
                logger.warning("cannot read the desired state, retrying: %s", error)
                await asyncio.sleep(RECONCILE_RETRY_S)

    def _apply(self, state: BalancerDesiredState) -> None:
        was_enabled = self.token_generation_enabled
        self.applicable = state.to_agent_desired_state()
        if was_enabled != self.token_generation_enabled:
            self.mode_changed.notify()
        for agent in self.pool.agents():
            self.send_to(agent)

    def send_to(self, agent: AgentController) -> None:
        """Tell one agent the applicable state, if there is one yet."""
        if self.applicable is not None:
            agent.send_state(self.applicable)
