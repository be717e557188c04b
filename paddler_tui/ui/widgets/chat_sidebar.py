"""The conversation list with its search box."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from paddler_tui.client.chat.conversation_store import Conversation


class ChatSidebar(Vertical):
    """Search box over the conversations, newest first.

    | Key | Binding id | Action |
    |---|---|---|
    | r | chat.rename | Rename the highlighted conversation |
    | d, delete | chat.delete | Delete the highlighted conversation |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "rename", "Rename", id="chat.rename"),
        Binding("d,delete", "delete", "Delete", id="chat.delete"),
    ]

    DEFAULT_CSS = """
    ChatSidebar {
        height: 1fr;
        #chat-search { margin: 0 0 1 0; }
        #chat-conversations { height: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    }
    """

    class Selected(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class Searched(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class RenameRequested(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    class DeleteRequested(Message):
        def __init__(self, conversation_id: int) -> None:
            super().__init__()
            self.conversation_id = conversation_id

    def __init__(self, *, cursor_blink: bool = True, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cursor_blink = cursor_blink

    def compose(self) -> ComposeResult:
        search = Input(placeholder="Search conversations", id="chat-search", compact=True)
        search.cursor_blink = self._cursor_blink
        yield search
        yield OptionList(id="chat-conversations", compact=True)

    def show(self, conversations: Sequence[Conversation], current: int | None) -> None:
        """List ``conversations``, highlighting ``current`` if it is among them."""
        options = self.query_one("#chat-conversations", OptionList)
        options.clear_options()
        options.add_options(
            Option(conversation.title, id=str(conversation.id)) for conversation in conversations
        )
        if current is not None:
            for index, conversation in enumerate(conversations):
                if conversation.id == current:
                    options.highlighted = index

    def focus_search(self) -> None:
        self.query_one("#chat-search", Input).focus()

    def _highlighted_id(self) -> int | None:
        options = self.query_one("#chat-conversations", OptionList)
        if options.highlighted is None:
            return None
        option_id = options.get_option_at_index(options.highlighted).id
        return None if option_id is None else int(option_id)

    @on(Input.Changed, "#chat-search")
    def _search(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Searched(event.value))

    @on(OptionList.OptionSelected, "#chat-conversations")
    def _select(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Selected(int(event.option.id)))

    def action_rename(self) -> None:
        conversation_id = self._highlighted_id()
        if conversation_id is not None:
            self.post_message(self.RenameRequested(conversation_id))

    def action_delete(self) -> None:
        conversation_id = self._highlighted_id()
        if conversation_id is not None:
            self.post_message(self.DeleteRequested(conversation_id))
