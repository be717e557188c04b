"""What only the monitor socket says about agents, for screens built on Paddler's streams.

The cluster screen follows Paddler's agents stream, which works against any balancer; the
extra-buffers verdicts (issue #12) and ``serve``'s supervision of its local agents (issue #13)
come from paddler-tui's monitor socket, followed here over one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.errors import ClientError, HttpStatusError
from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.monitor import MonitorAgent, MonitorLocalAgent, MonitorUpdate


@dataclass(frozen=True)
class ExtraBuffers:
    enabled: bool | None
    reason: str | None


def extra_buffers_by_agent(update: MonitorUpdate) -> dict[str, ExtraBuffers]:
    """What each agent reported, by agent id; agents that said nothing are left out."""
    return {
        agent.id: ExtraBuffers(agent.extra_buffers, agent.extra_buffers_reason)
        for agent in update.agents
        if agent.extra_buffers is not None
    }


def with_extra_buffers(agent: MonitorAgent, known: dict[str, ExtraBuffers]) -> MonitorAgent:
    verdict = known.get(agent.id)
    if verdict is None:
        return agent
    return agent.model_copy(
        update={"extra_buffers": verdict.enabled, "extra_buffers_reason": verdict.reason}
    )


@dataclass(frozen=True)
class MonitorExtras:
    # Each agent's extra-buffers verdict by agent id (agents that said nothing are left out).
    extra_buffers: dict[str, ExtraBuffers]
    local_agents: tuple[MonitorLocalAgent, ...] = ()


def monitor_extras(update: MonitorUpdate) -> MonitorExtras:
    return MonitorExtras(extra_buffers_by_agent(update), tuple(update.local_agents))


async def follow_monitor_extras(
    management_addr: str, api_key: str | None, *, retry_s: float
) -> AsyncIterator[MonitorExtras]:
    """The extras of each frame that changes them.

    Reconnects after ``retry_s`` while the balancer is unreachable, and ends for good when it
    refuses the socket (Paddler has none): the caller then shows all of it as unknown.
    """
    last: MonitorExtras | None = None
    while True:
        try:
            updates = monitor_updates(management_addr, api_key=api_key)
            async with closing(updates):
                async for update in updates:
                    current = monitor_extras(update)
                    if current != last:
                        last = current
                        yield current
        except HttpStatusError:
            return
        except ClientError:
            pass  # the balancer is away; the screen's own streams say so
        await asyncio.sleep(retry_s)
