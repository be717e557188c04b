"""What the status bar says about the balancer: reachable or not, agents and slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot

Status = Literal["connecting", "connected", "disconnected"]


@dataclass(frozen=True)
class ConnectionState:
    status: Status
    inference_addr: str
    # Why it is disconnected, or what is being waited for.
    detail: str = ""
    agents: int = 0
    slots_busy: int = 0
    slots_total: int = 0
    embedded: bool = False

    @classmethod
    def from_pool(
        cls, pool: AgentControllerPoolSnapshot, inference_addr: str, *, embedded: bool
    ) -> ConnectionState:
        return cls(
            status="connected",
            inference_addr=inference_addr,
            agents=len(pool.agents),
            slots_busy=sum(agent.slots_processing for agent in pool.agents),
            slots_total=sum(agent.slots_total for agent in pool.agents),
            embedded=embedded,
        )

    def summary(self, *, with_address: bool = True) -> str:
        where = f"{self.inference_addr}{' (embedded)' if self.embedded else ''}"
        if self.status == "connecting":
            return f"connecting to {where}" if with_address else "connecting"
        if self.status == "disconnected":
            return f"disconnected from {where}" if with_address else "disconnected, retrying"
        agents = f"{self.agents} agent{'' if self.agents == 1 else 's'}"
        slots = f"{self.slots_busy}/{self.slots_total} slots busy"
        if with_address:
            return f"{where} · {agents} · {slots}"
        return f"{'embedded · ' if self.embedded else ''}{agents} · {slots}"
