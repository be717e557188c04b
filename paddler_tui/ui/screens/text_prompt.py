"""Ask for one line of text (a conversation's new name)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class TextPromptScreen(ModalScreen[str | None]):
    """Dismissed with the stripped text (never blank), or ``None`` when cancelled.

    | Key | Binding id | Action |
    |---|---|---|
    | enter | | Accept |
    | escape | dialog.cancel | Cancel |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
    ]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self._question = question
        self._value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._question, classes="dialog-title")
            yield Input(self._value, id="text-prompt-input")
            yield Label("Enter accepts · Esc cancels", classes="dialog-hint")

    @on(Input.Submitted, "#text-prompt-input")
    def _accept(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
