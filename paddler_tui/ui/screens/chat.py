"""The chat: conversations in a sidebar, answers streamed from the cluster into Markdown.

The screen is composed of its concerns: conversations (:mod:`.chat_conversations`), answers
(:mod:`.chat_answers`) and what they share (:mod:`.chat_base`). The conversation and its store
are a :class:`~paddler_tui.client.chat.session.ChatSession`; exports are written by
:mod:`paddler_tui.ui.chat_export`.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from paddler_tui.ui.chat_export import export_conversation
from paddler_tui.ui.chat_text import code_blocks
from paddler_tui.ui.screens.chat_answers import ChatAnswers
from paddler_tui.ui.screens.chat_conversations import ChatConversations
from paddler_tui.ui.widgets.chat_log import ChatLog
from paddler_tui.ui.widgets.chat_prompt import ChatPrompt
from paddler_tui.ui.widgets.chat_sidebar import ChatSidebar
from paddler_tui.ui.widgets.chat_status import ChatStatus
from paddler_tui.ui.widgets.connection_bar import ConnectionBar


class ChatScreen(ChatConversations, ChatAnswers):
    """Conversations from the store on the left; the open one, its prompt and status on the right.

    | Key | Binding id | Action |
    |---|---|---|
    | escape | chat.stop | Stop the answer (or cancel editing) |
    | ctrl+n | chat.new | New conversation |
    | ctrl+r | chat.regenerate | Regenerate the last answer |
    | ctrl+l | chat.edit_last | Edit and resend the last message |
    | ctrl+o | chat.settings | System prompt, max tokens, thinking |
    | ctrl+t | chat.thinking | Thinking on/off |
    | ctrl+s | chat.export | Export to Markdown |
    | ctrl+f | chat.search | Search conversations |
    | ctrl+b | chat.sidebar | Show/hide the sidebar |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop", id="chat.stop"),
        Binding("ctrl+n", "new_conversation", "New", id="chat.new"),
        Binding("ctrl+r", "regenerate", "Regenerate", id="chat.regenerate"),
        Binding("ctrl+l", "edit_last", "Edit last message", id="chat.edit_last", show=False),
        Binding("ctrl+o", "settings", "Settings", id="chat.settings"),
        Binding("ctrl+t", "toggle_thinking", "Thinking on/off", id="chat.thinking", show=False),
        Binding("ctrl+s", "export", "Export to Markdown", id="chat.export", show=False),
        Binding("ctrl+f", "search", "Search conversations", id="chat.search", show=False),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", id="chat.sidebar", show=False),
    ]

    # Commands for the palette that have no key of their own: (title, help, action).
    PALETTE_ACTIONS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        ("Copy last answer", "Copy the newest answer's text", "copy_last_answer"),
        ("Copy last code block", "Copy the newest answer's last code block", "copy_last_code"),
        ("Rename conversation", "Rename the open conversation", "rename_current"),
        ("Delete conversation", "Delete the open conversation", "delete_current"),
    )

    def compose(self) -> ComposeResult:
        yield ConnectionBar()
        with Horizontal(id="chat-body"):
            yield ChatSidebar(id="chat-sidebar", cursor_blink=self._cursor_blink)
            with Vertical(id="chat-main"):
                yield ChatLog(id="chat-log")
                yield ChatPrompt(id="chat-prompt", cursor_blink=self._cursor_blink)
                yield ChatStatus(id="chat-status")
        yield Footer()

    async def on_mount(self) -> None:
        conversations = await self._refresh_sidebar()
        if conversations:
            await self.open_conversation(conversations[0].id)
        else:
            self._show_settings()
        self._prompt.focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating or self._editing is not None
        if action in ("regenerate", "edit_last"):
            return None if self.generating or not self.messages else True
        return True

    # Export and copies.

    async def action_export(self) -> None:
        if self.conversation is None or not self.messages:
            self.notify("Nothing to export yet", severity="warning", timeout=3)
            return
        try:
            path = await export_conversation(self._export_dir, self.conversation, self.messages)
        except OSError as error:
            self.notify(f"Export failed: {error}", severity="error")
            return
        self.notify(f"Exported to {path}", timeout=5)

    def action_copy_last_answer(self) -> None:
        widget = self._log.last_answer()
        if widget is None:
            self.notify("No answer yet", severity="warning", timeout=2)
            return
        widget.action_copy_message()

    def action_copy_last_code(self) -> None:
        widget = self._log.last_answer()
        blocks = code_blocks(widget.content) if widget is not None else []
        if not blocks:
            self.notify("The last answer has no code block", severity="warning", timeout=2)
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify("Copied the code block", timeout=2)
