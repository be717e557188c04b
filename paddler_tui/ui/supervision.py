"""How ``serve``'s supervision of its local agents shows in the TUI (issue #13).

Only a paddler-tui ``serve`` supervises agents, and only its monitor socket says how they fare
(``local_agents``): each agent's restarts, how its last process ended, and whether it waits out
a backoff or was given up on after a crash loop. Against anything else restarts are unknown.
An agent between two processes is not registered with the balancer, so the agents tables give
it a row of its own: the cluster shows every agent ``serve`` runs, not only those up now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from paddler_tui.protocol.monitor import MonitorLocalAgent
from paddler_tui.ui.extra_buffers import UNKNOWN

NOTE_LIMIT = 3
# The key of an agents-table row for a local agent that is not registered now; no agent id
# (21 characters of nanoid's alphabet) starts with it.
LOCAL_ROW_PREFIX = "local:"


def restarts_label(local: MonitorLocalAgent | None) -> str:
    """The agents tables' ``restarts`` cell: a count, or unknown for an agent no one supervises."""
    return UNKNOWN if local is None else str(local.restarts)


def state_label(local: MonitorLocalAgent) -> str:
    """The ``state`` cell of a local agent that has no balancer registration now."""
    if local.state == "gave_up":
        return "gave up"
    if local.state == "restarting":
        return "restarting"
    return "starting"


def by_name(local_agents: Iterable[MonitorLocalAgent]) -> dict[str, MonitorLocalAgent]:
    return {local.name: local for local in local_agents}


def unregistered(
    local_agents: Iterable[MonitorLocalAgent], registered: Iterable[str | None]
) -> list[MonitorLocalAgent]:
    """The local agents with no registered agent of their name: down, or on their way up."""
    names = set(registered)
    return [local for local in local_agents if local.name not in names]


def _seconds(milliseconds: int | None) -> str:
    return f" in {milliseconds / 1000:.1f}s" if milliseconds is not None else ""


def _restarts(count: int) -> str:
    return f"{count} restart" + ("" if count == 1 else "s")


@dataclass(frozen=True)
class SupervisionNote:
    text: str
    level: Literal["ok", "warning", "error"]


def supervision_notes(
    local_agents: Sequence[MonitorLocalAgent], limit: int = NOTE_LIMIT
) -> list[SupervisionNote]:
    """One line per local agent that has exited, the worst first: given up (error), waiting
    to restart (warning), running again (plain). Beyond ``limit`` the last line counts the
    rest; agents that never exited need no line."""
    notes: list[tuple[int, SupervisionNote]] = []
    for local in local_agents:
        if local.last_exit is None:
            continue
        if local.state == "gave_up":
            text = f"{local.name}: {local.last_exit} · crash loop, not restarted"
            text += f" ({_restarts(local.restarts)})"
            if local.log_file:
                text += f" · {local.log_file}"
            notes.append((0, SupervisionNote(text, "error")))
        elif local.state == "restarting":
            text = f"{local.name}: {local.last_exit} · restarting"
            text += f"{_seconds(local.next_restart_in_ms)} ({_restarts(local.restarts)} so far)"
            notes.append((1, SupervisionNote(text, "warning")))
        else:
            text = f"{local.name}: {_restarts(local.restarts)} · last exit: {local.last_exit}"
            notes.append((2, SupervisionNote(text, "ok")))
    ordered = [note for _, note in sorted(notes, key=lambda item: item[0])]
    if len(ordered) > limit:
        rest = len(ordered) - (limit - 1)
        ordered = [*ordered[: limit - 1], SupervisionNote(f"+{rest} more agents", "ok")]
    return ordered


def startup_detail(local_agents: Sequence[MonitorLocalAgent]) -> str:
    """While the embedded cluster starts: each agent that exited on the way, and what now."""
    lines = []
    for local in local_agents:
        if local.last_exit is None:
            continue
        if local.state == "restarting":
            doing = f"restarting{_seconds(local.next_restart_in_ms)}"
        elif local.state == "gave_up":
            doing = "not restarted (crash loop)"
        else:
            doing = "restarted"
        lines.append(
            f"{local.name} {local.last_exit}: {doing} ({_restarts(local.restarts)} so far)"
        )
    return "\n".join(lines)
