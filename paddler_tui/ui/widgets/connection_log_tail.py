"""The last lines of the log that explains a failed embedded start, titled with its path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class ConnectionLogTail(VerticalScroll):
    """Hidden until there is a tail to show. Long lines wrap rather than hide past the edge of
    a narrow dialog; it is scrolled to the end, where a crash leaves its stacks."""

    DEFAULT_CSS: ClassVar[str] = """
    ConnectionLogTail {
        height: auto;
        max-height: 35vh;  /* the dialog, buttons included, still fits 24 rows */
        margin: 1 0 0 0;
        border: round $error 60%;
        border-title-color: $text-muted;
        display: none;
        &.-shown { display: block; }
        #connection-log-lines { width: 1fr; }
    }
    """

    lines: tuple[str, ...] = ()

    def compose(self) -> ComposeResult:
        yield Static(id="connection-log-lines")

    def show(self, path: Path | None, lines: Sequence[str]) -> None:
        self.border_title = str(path) if path is not None else ""
        self.lines = tuple(lines)
        self.query_one(Static).update(Text("\n".join(lines), overflow="fold"))
        self.set_class(bool(lines), "-shown")
        self.call_after_refresh(self.scroll_end, animate=False)
