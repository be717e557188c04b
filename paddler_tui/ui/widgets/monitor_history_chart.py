"""Sparklines of busy slots, buffered requests and tokens/s over the last five minutes."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Grid
from textual.widgets import Label, Sparkline

from paddler_tui.client.monitoring.history import MonitorHistory

SERIES = (("busy", "busy slots"), ("buffered", "buffered"), ("tokens", "tokens/s"))


class MonitorHistoryChart(Grid):
    """One line per series: name, sparkline (one bar per second, newest right), last value."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorHistoryChart {
        grid-size: 3;
        grid-columns: 11 1fr 7;
        grid-rows: 1;
        height: 3;
        padding: 0 1;
        Sparkline { height: 1; }
        .value { text-align: right; }
    }
    """

    def compose(self) -> ComposeResult:
        for key, label in SERIES:
            yield Label(label)
            yield Sparkline([], summary_function=max, id=f"spark-{key}")
            yield Label("0", id=f"value-{key}", classes="value")

    def show(self, history: MonitorHistory) -> None:
        series = {
            "busy": history.busy,
            "buffered": history.buffered,
            "tokens": history.tokens_per_second,
        }
        busy, buffered = history.latest()
        latest = {
            "busy": float(busy),
            "buffered": float(buffered),
            "tokens": history.latest_tokens_per_second(),
        }
        for key, values in series.items():
            self.query_one(f"#spark-{key}", Sparkline).data = values
            self.query_one(f"#value-{key}", Label).update(f"{latest[key]:.0f}")
