"""Under an agents table: why each agent does or does not repack weights (extra buffers)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from paddler_tui.ui.extra_buffers import RepackNote


class AgentsRepackNote(Static):
    """One line per verdict, off in the warning colour; hidden while no agent reported one
    (Paddler, or agents still loading), so it costs no room there."""

    DEFAULT_CSS: ClassVar[str] = """
    AgentsRepackNote {
        height: auto;
        padding: 0 1;
        color: $text-muted;
        display: none;
        &.-shown { display: block; }
    }
    """

    def show(self, notes: list[RepackNote], *, warning: str) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, note in enumerate(notes):
            if index:
                text.append("\n")
            text.append(note.text, style=warning if note.warning else "")
        self.update(text)
        self.set_class(bool(notes), "-shown")
