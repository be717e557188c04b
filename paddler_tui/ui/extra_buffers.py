"""How each agent's extra-buffers verdict (issue #12) shows: table cells and notes.

Only paddler-tui agents report it, and only the monitor socket carries it; Paddler's agents
stream has no field for it. Screens built on that stream (the cluster screen) take the verdicts
from :func:`~paddler_tui.client.monitoring.extras.follow_monitor_extras`, which gives up quietly
against a balancer without the socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from paddler_tui.protocol.monitor import MonitorAgent

UNKNOWN = "—"
NOTE_LIMIT = 3
NOTE_NAMES = 3


def repack_label(enabled: bool | None) -> str:
    """The agents tables' ``repack`` cell: on, off, or unknown (not reported, or Paddler)."""
    if enabled is None:
        return UNKNOWN
    return "on" if enabled else "off"


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
