"""Sparklines of busy slots, buffered requests, tokens/s and the prompt-cache hit share over the
last five minutes."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Label, Sparkline

from paddler_tui.client.monitoring.history import MonitorHistory
from paddler_tui.client.monitoring.prompt_cache import share_label

# Key, name, and the value shown before any data.
SERIES = (
    ("busy", "busy slots", "0"),
    ("buffered", "buffered", "0"),
    ("tokens", "tokens/s", "0"),
    ("cache", "cache hits", "—"),
)


class MonitorHistoryChart(Grid):
    """One line per series: name, sparkline (one bar per second, newest right), last value.

    The cache line is the percentage of prompt tokens a cache held, of the requests that
    finished each second; its value is that of the last second with any (``—`` before one)."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorHistoryChart {
        grid-size: 3;
        grid-columns: 11 1fr 7;
        grid-rows: 1;
        height: 4;
        padding: 0 1;
        Sparkline { height: 1; }
        .value { text-align: right; }
    }
    """

    def compose(self) -> ComposeResult:
        for key, label, empty in SERIES:
            yield Label(label)
            yield Sparkline([], summary_function=max, id=f"spark-{key}")
            yield Label(empty, id=f"value-{key}", classes="value")

    def show(self, history: MonitorHistory) -> None:
        series = {
            "busy": history.busy,
            "buffered": history.buffered,
            "tokens": history.tokens_per_second,
            "cache": history.cache_hit_percent,
        }
        busy, buffered = history.latest()
        latest = {
            "busy": f"{busy}",
            "buffered": f"{buffered}",
            "tokens": f"{history.latest_tokens_per_second():.0f}",
            "cache": share_label(history.latest_prompt_tokens()),
        }
        for key, values in series.items():
            self.query_one(f"#spark-{key}", Sparkline).data = values
            self.query_one(f"#value-{key}", Label).update(latest[key])
