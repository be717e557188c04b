"""Why a run did not (fully) work and what to do about it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Static


class EmbeddingNotice(Horizontal):
    """Hidden until there is something to say; a 501 also offers to enable embeddings."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingNotice {
        display: none;
        height: auto;
        max-height: 6;
        padding: 0 1;
        border-left: thick $warning;
        background: $warning 10%;
        &.-shown { display: block; }
        &.-error { border-left: thick $error; background: $error 10%; }
        #notice-text { width: 1fr; height: auto; }
        #enable-embeddings { display: none; margin-left: 1; }
        &.-offer #enable-embeddings { display: block; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="notice-text")
        yield Button("Enable (ctrl+l)", id="enable-embeddings", compact=True, variant="warning")

    def say(self, text: str, *, error: bool = False, offer_enable: bool = False) -> None:
        self.query_one("#notice-text", Static).update(Text(text))
        self.set_class(True, "-shown")
        self.set_class(error, "-error")
        self.set_class(offer_enable, "-offer")

    def clear(self) -> None:
        self.set_class(False, "-shown", "-error", "-offer")
