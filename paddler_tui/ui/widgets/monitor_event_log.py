"""The event feed: joins, leaves, completions, 502/503/504s and cancels, newest last."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from paddler_tui.ui.monitor_view import EventLine

MAX_LINES = 1000


class MonitorEventLog(RichLog):
    DEFAULT_CSS: ClassVar[str] = """
    MonitorEventLog {
        height: 1fr;
        min-height: 3;
        border-top: solid $primary 30%;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, max_lines=MAX_LINES, wrap=False, markup=False)
        self.border_title = "events"

    def on_resize(self, _: Resize) -> None:
        # The log shrinks when the tables above it grow; like a write, that must keep the
        # newest line in view (RichLog's own handler, which runs too, only renders pending lines).
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=False, x_axis=False)

    def add(self, line: EventLine, styles: dict[str, str]) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{line.time} ", style="dim")
        text.append(f"{line.code:>3} ", style=styles.get(line.level, ""))
        text.append(f"{line.label:<14} ", style=styles.get(line.level, ""))
        text.append(line.text)
        self.write(text)

    def note(self, text: str, style: str = "") -> None:
        """A line of the screen's own (connection changes), not from the balancer."""
        self.write(Text(text, style=style, no_wrap=True, overflow="ellipsis"))
