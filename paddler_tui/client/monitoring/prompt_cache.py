"""How much of the cluster's prompts a cache held, from the monitor's per-agent totals.

Each agent's ``prompt_tokens`` and ``cached_prompt_tokens`` count, since the balancer started,
the generation requests it finished; ``routed`` counts why the balancer chose it. The totals only
grow while an agent stays; an agent that leaves takes its totals with it, so what happened between
two updates is taken agent by agent, never from the cluster's sums. ``prompt_cache_ram`` is what
an agent's prompt cache in host memory keeps now.
"""

from __future__ import annotations

from dataclasses import dataclass

from paddler_tui.protocol.agent_socket import PromptCacheRam
from paddler_tui.protocol.monitor import MonitorAgent, MonitorUpdate, RoutingCounts

MIB = 1024 * 1024


@dataclass(frozen=True)
class PromptTokens:
    """Prompt tokens, and how many of them a cache (slot KV or RAM) held."""

    prompt: int = 0
    cached: int = 0

    def __add__(self, other: PromptTokens) -> PromptTokens:
        return PromptTokens(self.prompt + other.prompt, self.cached + other.cached)

    @property
    def share(self) -> float | None:
        """The cached fraction (0 to 1); None without any prompt token to judge by."""
        return self.cached / self.prompt if self.prompt > 0 else None


def agent_prompt_tokens(agent: MonitorAgent) -> PromptTokens:
    return PromptTokens(agent.prompt_tokens, agent.cached_prompt_tokens)


def cluster_prompt_tokens(update: MonitorUpdate) -> PromptTokens:
    """The totals over the agents registered now."""
    total = PromptTokens()
    for agent in update.agents:
        total += agent_prompt_tokens(agent)
    return total


def routed_total(routed: RoutingCounts) -> int:
    return routed.prefix_hit + routed.fallback + routed.least_busy


def share_label(tokens: PromptTokens) -> str:
    """``62%``, or ``—`` before any prompt token."""
    share = tokens.share
    return "—" if share is None else f"{share:.0%}"


def cluster_ram_bytes(update: MonitorUpdate) -> int | None:
    """What the agents' prompt caches in RAM keep together; None while none reports one."""
    kept = [agent.prompt_cache_ram.bytes for agent in update.agents if agent.prompt_cache_ram]
    return sum(kept) if kept else None


def ram_label(ram: PromptCacheRam) -> str:
    """``3 states, 12.5 of 8192.0 MiB``, ``3 states, 12.5 MiB, no limit`` or ``off``."""
    if ram.budget_bytes == 0:
        return "off"
    used = f"{ram.states} states, {ram.bytes / MIB:.1f}"
    if ram.budget_bytes is None:
        return f"{used} MiB, no limit"
    return f"{used} of {ram.budget_bytes / MIB:.1f} MiB"


class PromptTokenCounter:
    """Prompt tokens finished between two updates, agent by agent.

    An agent new since the previous update counts whole; the first update is history, not
    counted as happening now.
    """

    def __init__(self) -> None:
        self._seen: dict[str, PromptTokens] | None = None

    def observe(self, update: MonitorUpdate) -> PromptTokens:
        current = {agent.id: agent_prompt_tokens(agent) for agent in update.agents}
        previous, self._seen = self._seen, current
        if previous is None:
            return PromptTokens()
        finished = PromptTokens()
        for agent_id, now in current.items():
            before = previous.get(agent_id, PromptTokens())
            # A total that shrank (an agent id back after a balancer restart) adds nothing.
            finished += PromptTokens(
                max(0, now.prompt - before.prompt), max(0, now.cached - before.cached)
            )
        return finished
