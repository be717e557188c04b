"""The balancer's metrics: Paddler's three gauges, rendered for Prometheus (``GET /metrics``)
and sent to StatsD, then paddler-tui's prompt-cache and routing counters (Prometheus only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from paddler_tui.server.balancer.routing.policy import ROUTING_DECISIONS, RoutingDecision

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8; escaping=values"


@dataclass(frozen=True)
class Gauges:
    """``slots_*`` are sums over all agents, ``slots_processing`` counted balancer-side."""

    slots_processing: int
    slots_total: int
    requests_buffered: int

    def named(self) -> tuple[tuple[str, str, int], ...]:
        """``(name, help, value)`` in Paddler's order."""
        return (
            ("slots_processing", "Number of processing slots", self.slots_processing),
            ("slots_total", "Number of total slots", self.slots_total),
            ("requests_buffered", "Number of buffered requests", self.requests_buffered),
        )


def render_prometheus(
    prefix: str, *, slots_processing: int, slots_total: int, requests_buffered: int
) -> str:
    """Prometheus text format, byte for byte as Paddler writes it; ``prefix`` is joined as is."""
    gauges = Gauges(slots_processing, slots_total, requests_buffered)
    return "\n".join(
        f"# HELP {prefix}{name} {help_text}\n# TYPE {prefix}{name} gauge\n{prefix}{name} {value}\n"
        for name, help_text, value in gauges.named()
    )


@dataclass(frozen=True)
class AgentPromptTokens:
    """One agent's prompt tokens over the generations it finished, and those a cache held."""

    agent_id: str
    prompt_tokens: int
    cached_prompt_tokens: int


def render_prometheus_counters(
    prefix: str, agents: Sequence[AgentPromptTokens], decisions: Mapping[RoutingDecision, int]
) -> str:
    """The counters that follow Paddler's gauges, in the same text format."""
    return "\n".join(
        (
            _counter(
                prefix,
                "prompt_tokens_total",
                "Prompt tokens of the generations each agent finished",
                [(_agent_label(agent), agent.prompt_tokens) for agent in agents],
            ),
            _counter(
                prefix,
                "prompt_cache_hit_tokens_total",
                "Prompt tokens of those generations that the agent's caches held",
                [(_agent_label(agent), agent.cached_prompt_tokens) for agent in agents],
            ),
            _counter(
                prefix,
                "routing_decisions_total",
                "Generation requests by how their agent was chosen",
                [(f'decision="{name}"', decisions.get(name, 0)) for name in ROUTING_DECISIONS],
            ),
        )
    )


def _counter(prefix: str, name: str, help_text: str, samples: list[tuple[str, int]]) -> str:
    lines = [f"# HELP {prefix}{name} {help_text}", f"# TYPE {prefix}{name} counter"]
    lines += [f"{prefix}{name}{{{labels}}} {value}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _agent_label(agent: AgentPromptTokens) -> str:
    # Escaped as the text format requires: backslash, double quote, line feed.
    value = agent.agent_id.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'agent="{value}"'
