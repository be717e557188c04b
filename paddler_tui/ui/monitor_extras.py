"""What only the monitor socket says about agents, for screens built on Paddler's streams.

The cluster screen follows Paddler's agents stream, which works against any balancer; the
extra-buffers verdicts (issue #12) and ``serve``'s supervision of its local agents (issue #13)
come from paddler-tui's monitor socket, followed here over one connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from paddler_tui.client.errors import ClientError, HttpStatusError
from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.monitor import MonitorLocalAgent, MonitorUpdate
from paddler_tui.ui.async_iteration import closing
from paddler_tui.ui.extra_buffers import ExtraBuffers, extra_buffers_by_agent


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
