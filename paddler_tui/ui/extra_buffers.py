"""Whether each agent repacks weights into llama.cpp's extra buffer types, and why (issue #12).

Only paddler-tui agents report it, and only the monitor socket carries it; Paddler's agents
stream has no field for it. Screens built on that stream (the cluster screen) take the verdicts
from :func:`follow_extra_buffers`, which gives up quietly against a balancer without the socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from paddler_tui.client.errors import ClientError, HttpStatusError
from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.monitor import MonitorAgent, MonitorUpdate
from paddler_tui.ui.async_iteration import closing

UNKNOWN = "—"
NOTE_LIMIT = 3
NOTE_NAMES = 3


def repack_label(enabled: bool | None) -> str:
    """The agents tables' ``repack`` cell: on, off, or unknown (not reported, or Paddler)."""
    if enabled is None:
        return UNKNOWN
    return "on" if enabled else "off"


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
class RepackNote:
    text: str
    # Off is worth a look: prompts run slower, and it may mean a probe crashed on this host.
    warning: bool


def repack_notes(agents: Sequence[MonitorAgent], limit: int = NOTE_LIMIT) -> list[RepackNote]:
    """One line per distinct verdict, naming its agents (``gamma: repack off — probe crashed``).

    Agents that agree share a line, so a large cluster on identical hosts stays one line; off
    comes first, and beyond ``limit`` lines the last one counts what is left.
    """
    groups: dict[tuple[bool, str], list[str]] = {}
    for agent in agents:
        if agent.extra_buffers is None:
            continue
        key = (agent.extra_buffers, agent.extra_buffers_reason or "")
        groups.setdefault(key, []).append(agent.name or agent.id)
    ordered = sorted(groups.items(), key=lambda item: item[0][0])  # off (False) first
    notes = [
        RepackNote(_note_text(names, enabled, reason), warning=not enabled)
        for (enabled, reason), names in ordered
    ]
    if len(notes) > limit:
        rest = sum(len(names) for _, names in ordered[limit - 1 :])
        notes = [*notes[: limit - 1], RepackNote(f"+{rest} more agents", warning=False)]
    return notes


def _note_text(names: list[str], enabled: bool, reason: str) -> str:
    shown = ", ".join(names[:NOTE_NAMES])
    if len(names) > NOTE_NAMES:
        shown += f" +{len(names) - NOTE_NAMES}"
    verdict = f"{shown}: repack {repack_label(enabled)}"
    return f"{verdict} — {reason}" if reason else verdict


async def follow_extra_buffers(
    management_addr: str, api_key: str | None, *, retry_s: float
) -> AsyncIterator[dict[str, ExtraBuffers]]:
    """Each agent's verdict from the monitor socket, again whenever one changes.

    Reconnects after ``retry_s`` while the balancer is unreachable, and ends for good when it
    refuses the socket (Paddler has none): the caller then shows every verdict as unknown.
    """
    last: dict[str, ExtraBuffers] | None = None
    while True:
        try:
            updates = monitor_updates(management_addr, api_key=api_key)
            async with closing(updates):
                async for update in updates:
                    current = extra_buffers_by_agent(update)
                    if current != last:
                        last = current
                        yield current
        except HttpStatusError:
            return
        except ClientError:
            pass  # the balancer is away; the screen's own streams say so
        await asyncio.sleep(retry_s)
