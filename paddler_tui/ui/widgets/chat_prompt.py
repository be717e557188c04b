"""The message editor: Enter sends, Shift+Enter or Ctrl+J starts a new line."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import TextArea


class ChatPrompt(TextArea):
    """A TextArea whose Enter sends instead of breaking the line.

    | Key | Binding id | Action |
    |---|---|---|
    | enter | chat.send | Send the message |
    | shift+enter, ctrl+j | chat.newline | Insert a line break |

    Ctrl+J is there because many terminals cannot tell Shift+Enter from Enter.
    """

    # Not priority bindings: those run as a key arrives, before the keys typed just ahead of it
    # reach the text, so a fast typist or a paste could send half a message. See _on_key.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Send", id="chat.send"),
        Binding("shift+enter,ctrl+j", "newline", "New line", id="chat.newline", show=False),
    ]

    DEFAULT_CSS = """
    ChatPrompt {
        height: auto;
        min-height: 3;
        max-height: 10;
    }
    """

    class Submitted(Message):
        """The user sent ``text`` (never blank)."""

        def __init__(self, prompt: ChatPrompt, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> ChatPrompt:
            return self.prompt

    def __init__(
        self, *, cursor_blink: bool = True, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(
            soft_wrap=True,
            show_line_numbers=False,
            placeholder="Ask something — Enter sends, Shift+Enter or Ctrl+J for a new line",
            id=id,
            classes=classes,
        )
        self.cursor_blink = cursor_blink

    async def _on_key(self, event: events.Key) -> None:
        # TextArea would insert a key bound here (Enter) and stop it; left alone, it reaches the
        # bindings in turn, after the keys before it. Active bindings carry the user's keymap.
        active = self.screen.active_bindings.get(event.key)
        if active is not None and active.node is self:
            event.prevent_default()

    def action_submit(self) -> None:
        text = self.text.strip()
        if text:
            self.post_message(self.Submitted(self, text))

    def action_newline(self) -> None:
        self.insert("\n")
