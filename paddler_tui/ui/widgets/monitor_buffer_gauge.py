"""The buffer: requests waiting for a slot, against the limit, with the buffer timeout."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from paddler_tui.ui.monitor_view import BufferGauge


class MonitorBufferGauge(Horizontal):
    """A bar of buffered/limit; without a known limit (Paddler's SSE) just the count."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorBufferGauge {
        height: 1;
        padding: 0 1;
        #buffer-bar { width: 22; }
        #buffer-bar Bar { width: 20; }
        #buffer-text { width: 1fr; padding-left: 1; }
        &.-unknown-limit #buffer-bar { display: none; }
        &.-warning #buffer-text { color: $warning; }
        &.-error #buffer-text { color: $error; }
    }
    """

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="buffer-bar")
        yield Label("buffered —", id="buffer-text")

    def show(self, gauge: BufferGauge) -> None:
        self.set_class(gauge.limit <= 0, "-unknown-limit")
        self.set_class(gauge.level == "warning", "-warning")
        self.set_class(gauge.level == "error", "-error")
        if gauge.limit > 0:
            self.query_one(ProgressBar).update(total=gauge.limit, progress=gauge.buffered)
        self.query_one("#buffer-text", Label).update(gauge.text)
