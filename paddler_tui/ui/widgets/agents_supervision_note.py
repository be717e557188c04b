"""Under an agents table: how ``serve``'s local agents fared (restarts, last exit, crash loop)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from paddler_tui.ui.supervision import SupervisionNote


class AgentsSupervisionNote(Static):
    """One line per agent that exited, a crash loop in the error colour; hidden while none has
    (and against a balancer that supervises nothing), so it costs no room there."""

    DEFAULT_CSS: ClassVar[str] = """
    AgentsSupervisionNote {
        height: auto;
        padding: 0 1;
        color: $text-muted;
        display: none;
        &.-shown { display: block; }
    }
    """

    def show(self, notes: list[SupervisionNote], styles: dict[str, str]) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        for index, note in enumerate(notes):
            if index:
                text.append("\n")
            text.append(note.text, style=styles.get(note.level, ""))
        self.update(text)
        self.set_class(bool(notes), "-shown")
