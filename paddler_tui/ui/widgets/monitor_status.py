"""The monitor's headline: connection, source, slot totals, throughput, and pause."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static


class MonitorStatus(Static):
    """``● live via monitor socket · 2 agents · slots 3/4 busy · 41 tok/s``."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorStatus {
        height: 1;
        padding: 0 1;
        background: $boost;
        &.-disconnected { background: $error 25%; }
        &.-paused { background: $warning 25%; }
    }
    """

    connection: reactive[str] = reactive("connecting…")
    """"connecting…", "live via …", or "disconnected: why"."""
    connected: reactive[bool] = reactive(False)
    paused: reactive[bool] = reactive(False)
    summary: reactive[str] = reactive("")
    """Agents, slots and throughput, once an update arrived."""

    def render(self) -> Text:
        mark = "●" if self.connected else "○"
        parts = [f"{mark} {self.connection}"]
        if self.summary:
            parts.append(self.summary)
        if self.paused:
            parts.append("PAUSED (p resumes)")
        return Text(" · ".join(parts), no_wrap=True, overflow="ellipsis")

    def watch_connected(self, connected: bool) -> None:
        self.set_class(not connected, "-disconnected")

    def watch_paused(self, paused: bool) -> None:
        self.set_class(paused, "-paused")
