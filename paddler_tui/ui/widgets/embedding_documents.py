"""The documents to embed: a text area, one document per line, counted in its title."""

from __future__ import annotations

from typing import ClassVar

from textual.reactive import reactive
from textual.widgets import TextArea

from paddler_tui.client.embeddings.request import documents_from_text


class EmbeddingDocuments(TextArea):
    """One document per non-blank line; the border title counts them."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingDocuments {
        height: 1fr;
        min-height: 4;
        border: round $primary 50%;
        &:focus { border: round $primary; }
    }
    """

    count: reactive[int] = reactive(0)
    """How many documents the text holds."""

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(
            text,
            id=id,
            soft_wrap=False,
            show_line_numbers=True,
            placeholder="Type one document per line, or load a file (ctrl+o)",
        )

    def on_mount(self) -> None:
        self.count = len(self.documents())
        self.watch_count(self.count)

    def set_documents(self, text: str) -> None:
        self.load_text(text)
        self.count = len(self.documents())

    def documents(self) -> list[str]:
        return documents_from_text(self.text)

    def on_text_area_changed(self, _: TextArea.Changed) -> None:
        self.count = len(self.documents())

    def watch_count(self, count: int) -> None:
        self.border_title = f"Documents · {count}"
