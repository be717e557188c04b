"""The balancer's metrics: Paddler's three gauges, rendered for Prometheus (``GET /metrics``)
and sent to StatsD, then paddler-tui's prompt-cache and routing counters and the agents' prompt
caches in host memory (Prometheus only)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from paddler_tui.protocol.agent_socket import PromptCacheRam
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
    """One agent's prompt tokens over the generations it finished, and those a cache held;
    and what its prompt cache in host memory keeps, when the agent reports it."""

    agent_id: str
    prompt_tokens: int
    cached_prompt_tokens: int
    ram: PromptCacheRam | None = None


def render_prometheus_counters(
    prefix: str, agents: Sequence[AgentPromptTokens], decisions: Mapping[RoutingDecision, int]
) -> str:
    """What follows Paddler's gauges, in the same text format: the prompt-token and routing
    counters, then gauges of the agents' prompt caches in host memory (agents that report)."""
    return "\n".join(
        (
            _metric(
                prefix,
                "prompt_tokens_total",
                "Prompt tokens of the generations each agent finished",
                [(_agent_label(agent), agent.prompt_tokens) for agent in agents],
            ),
            _metric(
                prefix,
                "prompt_cache_hit_tokens_total",
                "Prompt tokens of those generations that the agent's caches held",
                [(_agent_label(agent), agent.cached_prompt_tokens) for agent in agents],
            ),
            _metric(
                prefix,
                "routing_decisions_total",
                "Generation requests by how their agent was chosen",
                [(f'decision="{name}"', decisions.get(name, 0)) for name in ROUTING_DECISIONS],
            ),
            *(
                _metric(
                    prefix,
                    f"prompt_cache_ram_{name}",
                    f"{noun} each agent's prompt cache in host memory keeps",
                    [(_agent_label(a), measure(a.ram)) for a in agents if a.ram is not None],
                    kind="gauge",
                )
                for name, noun, measure in _RAM_GAUGES
            ),
        )
    )


_RAM_GAUGES: tuple[tuple[str, str, Callable[[PromptCacheRam], int]], ...] = (
    ("states", "Sequences", lambda ram: ram.states),
    ("bytes", "Bytes", lambda ram: ram.bytes),
)


def _metric(
    prefix: str,
    name: str,
    help_text: str,
    samples: list[tuple[str, int]],
    *,
    kind: str = "counter",
) -> str:
    lines = [f"# HELP {prefix}{name} {help_text}", f"# TYPE {prefix}{name} {kind}"]
    lines += [f"{prefix}{name}{{{labels}}} {value}" for labels, value in samples]
    return "\n".join(lines) + "\n"


def _agent_label(agent: AgentPromptTokens) -> str:
    # Escaped as the text format requires: backslash, double quote, line feed.
    value = agent.agent_id.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'agent="{value}"'
