"""Following a desired-state PUT until every agent has applied it.

Agents report no version of the state they applied, only ``state_application_status``. A change
that needs a reload passes through other statuses (or ``slots_total`` 0) before ``Applied``; one
applied in place may go straight from ``Applied`` to ``Applied``. So an agent counts as done once
it is ``Applied`` and has either visibly moved since the PUT or had :data:`SETTLE_S` to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot, AgentControllerSnapshot

SETTLE_S = 2.0

AgentApplyState = Literal["applying", "applied", "failed"]
_FAILED = ("Stuck", "AttemptedAndNotAppliable")


def _progress_key(agent: AgentControllerSnapshot) -> tuple[object, ...]:
    return (
        agent.state_application_status,
        agent.model_path,
        agent.slots_total,
        agent.download_current,
        agent.uses_chat_template_override,
    )


@dataclass
class ApplyTracker:
    started_at: float
    _baseline: dict[str, tuple[object, ...]] | None = None
    _moved: set[str] = field(default_factory=set)

    def observe(self, snapshot: AgentControllerPoolSnapshot) -> None:
        if self._baseline is None:
            self._baseline = {agent.id: _progress_key(agent) for agent in snapshot.agents}
            return
        for agent in snapshot.agents:
            before = self._baseline.get(agent.id)
            # An agent that joined after the PUT gets the new state when it registers.
            if before is None or before != _progress_key(agent):
                self._moved.add(agent.id)

    def agent_state(self, agent: AgentControllerSnapshot, now: float) -> AgentApplyState:
        # Until then the status may still describe the previous state.
        settled = agent.id in self._moved or now - self.started_at >= SETTLE_S
        if not settled:
            return "applying"
        status = agent.state_application_status
        if status in _FAILED:
            return "failed"
        return "applied" if status == "Applied" else "applying"

    def finished(self, snapshot: AgentControllerPoolSnapshot, now: float) -> bool:
        """Every agent applied or failed (with no agent, nothing is left to wait for)."""
        return all(self.agent_state(agent, now) != "applying" for agent in snapshot.agents)

    def summary(self, snapshot: AgentControllerPoolSnapshot, now: float) -> str:
        states = [self.agent_state(agent, now) for agent in snapshot.agents]
        if not states:
            return "saved; no agent is connected, each applies it when it joins"
        applied, failed = states.count("applied"), states.count("failed")
        if failed:
            return f"{failed} of {len(states)} agents could not apply it (see issues)"
        if applied == len(states):
            return f"applied by all {len(states)} agents"
        return f"applying… {applied}/{len(states)} agents done"
