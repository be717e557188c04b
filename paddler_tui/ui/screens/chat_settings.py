"""Per-conversation settings: system prompt, max tokens, thinking."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Number
from textual.widgets import Button, Input, Label, Static, Switch, TextArea

from paddler_tui.client.chat.conversation_store import ConversationSettings

MAX_TOKENS_LIMIT = 2**31 - 1


class ChatSettingsScreen(ModalScreen[ConversationSettings | None]):
    """Dismissed with the new settings, or ``None`` when cancelled.

    | Key | Binding id | Action |
    |---|---|---|
    | ctrl+s | dialog.save | Save |
    | escape | dialog.cancel | Cancel |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", id="dialog.save"),
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
    ]

    def __init__(self, settings: ConversationSettings, *, title: str) -> None:
        super().__init__()
        self._settings = settings
        self._title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Settings of {self._title}", classes="dialog-title")
            yield Label("System prompt")
            yield TextArea(
                self._settings.system_prompt, id="settings-system-prompt", soft_wrap=True
            )
            with Horizontal(classes="dialog-row"):
                yield Label("Max tokens", classes="dialog-label")
                yield Input(
                    str(self._settings.max_tokens),
                    type="integer",
                    validators=[Number(minimum=1, maximum=MAX_TOKENS_LIMIT)],
                    id="settings-max-tokens",
                    compact=True,
                )
            with Horizontal(classes="dialog-row"):
                yield Label("Thinking", classes="dialog-label")
                yield Switch(self._settings.enable_thinking, id="settings-thinking")
            yield Static("", id="settings-problem", classes="dialog-problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="settings-save")
                yield Button("Cancel", id="settings-cancel")

    def on_mount(self) -> None:
        self.query_one("#settings-system-prompt", TextArea).focus()

    @on(Button.Pressed, "#settings-save")
    @on(Input.Submitted, "#settings-max-tokens")
    def action_save(self) -> None:
        max_tokens = self.query_one("#settings-max-tokens", Input)
        validation = max_tokens.validate(max_tokens.value)
        if validation is not None and not validation.is_valid:
            self.query_one("#settings-problem", Static).update(
                f"Max tokens must be a whole number from 1 to {MAX_TOKENS_LIMIT}."
            )
            max_tokens.focus()
            return
        self.dismiss(
            ConversationSettings(
                system_prompt=self.query_one("#settings-system-prompt", TextArea).text,
                max_tokens=int(max_tokens.value),
                enable_thinking=self.query_one("#settings-thinking", Switch).value,
            )
        )

    @on(Button.Pressed, "#settings-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
