"""The chat's conversations: opening, starting, searching, renaming, deleting, their settings."""

from __future__ import annotations

from textual import on, work

from paddler_tui.client.chat.conversation_store import ConversationSettings
from paddler_tui.ui.screens.chat_base import ChatScreenBase
from paddler_tui.ui.screens.chat_settings import ChatSettingsScreen
from paddler_tui.ui.screens.confirm import ConfirmScreen
from paddler_tui.ui.screens.text_prompt import TextPromptScreen
from paddler_tui.ui.widgets.chat_sidebar import ChatSidebar


class ChatConversations(ChatScreenBase):
    async def open_conversation(self, conversation_id: int) -> None:
        await self.stop_generation()
        if not await self.session.open(conversation_id):
            return
        self._editing = None
        await self._log.show(self.messages, retry_hint=self._retry_hint())
        self._show_all()

    async def _start_new(self) -> None:
        await self.stop_generation()
        self.session.start_new()
        self._editing = None
        await self._log.clear()
        self._prompt.clear()
        self._show_all()
        await self._refresh_sidebar()

    @on(ChatSidebar.Selected)
    async def _selected(self, event: ChatSidebar.Selected) -> None:
        if event.conversation_id != self.session.current_id:
            await self.open_conversation(event.conversation_id)
        self._prompt.focus()

    @on(ChatSidebar.Searched)
    def _searched(self, event: ChatSidebar.Searched) -> None:
        self.session.search = event.text
        self._run_search()

    @work(exclusive=True, group="chat-search")
    async def _run_search(self) -> None:
        await self._refresh_sidebar()

    @on(ChatSidebar.RenameRequested)
    def _rename_requested(self, event: ChatSidebar.RenameRequested) -> None:
        self._rename(event.conversation_id)

    @on(ChatSidebar.DeleteRequested)
    def _delete_requested(self, event: ChatSidebar.DeleteRequested) -> None:
        self._delete(event.conversation_id)

    @work(group="chat-dialogs")
    async def _rename(self, conversation_id: int) -> None:
        conversation = await self.session.store.conversation(conversation_id)
        if conversation is None:
            return
        title = await self.app.push_screen_wait(
            TextPromptScreen("Rename the conversation", conversation.title)
        )
        if title is None:
            return
        await self.session.rename(conversation_id, title)
        await self._refresh_sidebar()

    @work(group="chat-dialogs")
    async def _delete(self, conversation_id: int) -> None:
        conversation = await self.session.store.conversation(conversation_id)
        if conversation is None:
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmScreen(
                f"Delete “{conversation.title}” and its messages?", confirm_label="Delete"
            )
        )
        if not confirmed:
            return
        is_current = self.session.current_id == conversation_id
        if is_current:
            await self.stop_generation()
        await self.session.delete(conversation_id)
        if is_current:
            await self._start_new()
        else:
            await self._refresh_sidebar()
        self.notify(f"Deleted “{conversation.title}”", timeout=3)

    async def action_new_conversation(self) -> None:
        await self._start_new()
        self._prompt.focus()

    def action_rename_current(self) -> None:
        if self.conversation is not None:
            self._rename(self.conversation.id)

    def action_delete_current(self) -> None:
        if self.conversation is not None:
            self._delete(self.conversation.id)

    def action_search(self) -> None:
        sidebar = self._sidebar
        sidebar.display = True
        sidebar.focus_search()

    def action_toggle_sidebar(self) -> None:
        sidebar = self._sidebar
        sidebar.display = not sidebar.display
        if not sidebar.display:
            self._prompt.focus()

    @work(group="chat-dialogs")
    async def action_settings(self) -> None:
        title = self.conversation.title if self.conversation is not None else "the new conversation"
        settings = await self.app.push_screen_wait(
            ChatSettingsScreen(self.session.settings, title=title)
        )
        if settings is not None:
            await self._apply_settings(settings)

    async def _apply_settings(self, settings: ConversationSettings) -> None:
        await self.session.apply_settings(settings)
        self._show_settings()

    async def action_toggle_thinking(self) -> None:
        current = self.session.settings
        enabled = not current.enable_thinking
        await self._apply_settings(
            ConversationSettings(current.system_prompt, current.max_tokens, enabled)
        )
        self.notify(f"Thinking {'on' if enabled else 'off'} for this conversation", timeout=2)
