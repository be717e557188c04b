"""The balancer's three gauges, rendered for Prometheus (``GET /metrics``) and sent to StatsD."""

from __future__ import annotations

from dataclasses import dataclass

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
