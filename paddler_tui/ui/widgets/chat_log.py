"""The open conversation's messages, newest last, with a hint while there are none."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from paddler_tui.client.chat.conversation_store import StoredMessage
from paddler_tui.ui.widgets.chat_message import ChatMessage

EMPTY_TEXT = (
    "Ask anything: the answer streams from an agent of the cluster.\n\n"
    "Enter sends · Shift+Enter or Ctrl+J adds a line · Esc stops an answer · "
    "F1 lists every key · Ctrl+P finds every action"
)


class ChatLog(VerticalScroll):
    def compose(self) -> ComposeResult:
        yield Static(EMPTY_TEXT, id="chat-empty")

    def _show_empty(self, empty: bool) -> None:
        self.query_one("#chat-empty").display = empty

    async def show(self, messages: Sequence[StoredMessage], *, retry_hint: str) -> None:
        """Show ``messages`` instead of what is there, scrolled to the newest."""
        await self.remove_children(ChatMessage)
        self._show_empty(not messages)
        await self.mount_all(
            ChatMessage.from_stored(message, retry_hint=retry_hint) for message in messages
        )
        self.anchor()

    async def clear(self) -> None:
        await self.remove_children(ChatMessage)
        self._show_empty(True)

    async def add(self, message: StoredMessage) -> None:
        self._show_empty(False)
        await self.mount(ChatMessage.from_stored(message))

    async def start_answer(self) -> ChatMessage:
        """A new assistant message to stream into, kept in view as it grows."""
        widget = ChatMessage("assistant", streaming=True)
        await self.mount(widget)
        self.anchor()
        return widget

    async def remove_from(self, message_id: int) -> None:
        """Remove message ``message_id``, every later one and an answer not stored yet."""
        for widget in list(self.query(ChatMessage)):
            if widget.message_id is None or widget.message_id >= message_id:
                await widget.remove()

    def last_answer(self) -> ChatMessage | None:
        answers = [widget for widget in self.query(ChatMessage) if widget.role == "assistant"]
        return answers[-1] if answers else None
