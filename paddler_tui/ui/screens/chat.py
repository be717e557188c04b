"""The chat: conversations in a sidebar, answers streamed from the cluster into Markdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Static
from textual.worker import Worker

from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams
from paddler_tui.ui.chat_text import (
    answer_summary,
    code_blocks,
    conversation_markdown,
    export_filename,
    history,
    title_from_prompt,
)
from paddler_tui.ui.config import ChatDefaults
from paddler_tui.ui.conversation_store import (
    Conversation,
    ConversationSettings,
    ConversationStore,
    NewMessage,
    StoredMessage,
)
from paddler_tui.ui.generation import (
    ContentDelta,
    Generation,
    GenerationDone,
    GenerationFailed,
    ReasoningDelta,
)
from paddler_tui.ui.key_bindings import shown_key
from paddler_tui.ui.screens.chat_settings import ChatSettingsScreen
from paddler_tui.ui.screens.confirm import ConfirmScreen
from paddler_tui.ui.screens.text_prompt import TextPromptScreen
from paddler_tui.ui.services import BalancerServices
from paddler_tui.ui.widgets.chat_message import ChatMessage
from paddler_tui.ui.widgets.chat_prompt import ChatPrompt
from paddler_tui.ui.widgets.chat_sidebar import ChatSidebar
from paddler_tui.ui.widgets.chat_status import ChatStatus
from paddler_tui.ui.widgets.connection_bar import ConnectionBar

logger = logging.getLogger(__name__)

EMPTY_TEXT = (
    "Ask anything: the answer streams from an agent of the cluster.\n\n"
    "Enter sends · Shift+Enter or Ctrl+J adds a line · Esc stops an answer · "
    "F1 lists every key · Ctrl+P finds every action"
)


class ChatScreen(Screen[None]):
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

    generating: reactive[bool] = reactive(False, bindings=True)
    """An answer is streaming."""

    def __init__(
        self,
        services: BalancerServices,
        store: ConversationStore,
        *,
        defaults: ChatDefaults,
        export_dir: Path,
        clock: Callable[[], float],
        cursor_blink: bool = True,
    ) -> None:
        super().__init__()
        self.services = services
        self.store = store
        self._defaults = ConversationSettings(
            system_prompt=defaults.system_prompt,
            max_tokens=defaults.max_tokens,
            enable_thinking=defaults.enable_thinking,
        )
        self._export_dir = export_dir
        self._clock = clock
        self._cursor_blink = cursor_blink
        self.conversation: Conversation | None = None
        self.messages: list[StoredMessage] = []
        self._draft = self._defaults
        self._editing: StoredMessage | None = None
        self._generation: Generation | None = None
        self._generation_worker: Worker[None] | None = None
        self._search = ""

    def compose(self) -> ComposeResult:
        yield ConnectionBar()
        with Horizontal(id="chat-body"):
            yield ChatSidebar(id="chat-sidebar", cursor_blink=self._cursor_blink)
            with Vertical(id="chat-main"):
                with VerticalScroll(id="chat-log"):
                    yield Static(EMPTY_TEXT, id="chat-empty")
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

    # Parts.

    @property
    def _log(self) -> VerticalScroll:
        return self.query_one("#chat-log", VerticalScroll)

    @property
    def _prompt(self) -> ChatPrompt:
        return self.query_one(ChatPrompt)

    @property
    def _status(self) -> ChatStatus:
        return self.query_one(ChatStatus)

    @property
    def _sidebar(self) -> ChatSidebar:
        return self.query_one(ChatSidebar)

    @property
    def settings(self) -> ConversationSettings:
        return self.conversation.settings if self.conversation is not None else self._draft

    def _retry_hint(self) -> str:
        return f"Press {shown_key(self.app, 'chat.regenerate', 'ctrl+r')} to retry."

    def _show_settings(self) -> None:
        settings = self.settings
        parts = [
            f"max {settings.max_tokens} tokens",
            f"thinking {'on' if settings.enable_thinking else 'off'}",
        ]
        if settings.system_prompt.strip():
            parts.append("system prompt")
        self._status.settings = " · ".join(parts)

    def _show_last_answer(self) -> None:
        answer = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        self._status.last_answer = (
            ""
            if answer is None
            else answer_summary(answer.generated_by, answer.usage, answer.tokens_per_second)
        )

    def _show_state(self) -> None:
        if self.generating:
            self._status.state = "generating"
        elif self._editing is not None:
            self._status.state = "editing"
        else:
            self._status.state = "ready"

    def watch_generating(self) -> None:
        self._show_state()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.generating or self._editing is not None
        if action in ("regenerate", "edit_last"):
            return None if self.generating or not self.messages else True
        return True

    async def _refresh_sidebar(self) -> list[Conversation]:
        conversations = await self.store.conversations(self._search)
        current = self.conversation.id if self.conversation is not None else None
        self._sidebar.show(conversations, current)
        return conversations

    # Conversations.

    async def open_conversation(self, conversation_id: int) -> None:
        await self.stop_generation()
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return
        self.conversation = conversation
        self.messages = await self.store.messages(conversation_id)
        self._editing = None
        log = self._log
        await log.remove_children(ChatMessage)
        self.query_one("#chat-empty").display = not self.messages
        await log.mount_all(
            ChatMessage.from_stored(message, retry_hint=self._retry_hint())
            for message in self.messages
        )
        log.anchor()
        self._show_settings()
        self._show_last_answer()
        self._show_state()
        self.refresh_bindings()

    async def _start_new(self) -> None:
        await self.stop_generation()
        self.conversation = None
        self.messages = []
        self._editing = None
        self._draft = self._defaults
        await self._log.remove_children(ChatMessage)
        self.query_one("#chat-empty").display = True
        self._prompt.clear()
        self._show_settings()
        self._show_last_answer()
        self._show_state()
        self.refresh_bindings()
        await self._refresh_sidebar()

    @on(ChatSidebar.Selected)
    async def _selected(self, event: ChatSidebar.Selected) -> None:
        if self.conversation is None or event.conversation_id != self.conversation.id:
            await self.open_conversation(event.conversation_id)
        self._prompt.focus()

    @on(ChatSidebar.Searched)
    def _searched(self, event: ChatSidebar.Searched) -> None:
        self._search = event.text
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
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return
        title = await self.app.push_screen_wait(
            TextPromptScreen("Rename the conversation", conversation.title)
        )
        if title is None:
            return
        await self.store.rename(conversation_id, title)
        if self.conversation is not None and self.conversation.id == conversation_id:
            self.conversation = await self.store.conversation(conversation_id)
        await self._refresh_sidebar()

    @work(group="chat-dialogs")
    async def _delete(self, conversation_id: int) -> None:
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return
        confirmed = await self.app.push_screen_wait(
            ConfirmScreen(
                f"Delete “{conversation.title}” and its messages?", confirm_label="Delete"
            )
        )
        if not confirmed:
            return
        is_current = self.conversation is not None and self.conversation.id == conversation_id
        if is_current:
            await self.stop_generation()
        await self.store.delete(conversation_id)
        if is_current:
            await self._start_new()
        else:
            await self._refresh_sidebar()
        self.notify(f"Deleted “{conversation.title}”", timeout=3)

    # Sending and answers.

    @on(ChatPrompt.Submitted)
    async def _submitted(self, event: ChatPrompt.Submitted) -> None:
        if self.generating:
            stop = shown_key(self.app, "chat.stop", "esc")
            self.notify(f"An answer is still streaming; {stop} stops it.", severity="warning")
            return
        self._prompt.clear()
        if self._editing is not None:
            await self._drop_from(self._editing)
            self._editing = None
        if self.conversation is None:
            self.conversation = await self.store.create(title_from_prompt(event.text), self._draft)
        stored = await self.store.add_message(self.conversation.id, NewMessage("user", event.text))
        self.messages.append(stored)
        self.query_one("#chat-empty").display = False
        await self._log.mount(ChatMessage.from_stored(stored))
        await self._refresh_sidebar()
        self._answer()

    async def _drop_from(self, message: StoredMessage) -> None:
        """Forget ``message`` and everything after it, stored and shown."""
        assert self.conversation is not None
        await self.store.delete_messages_from(self.conversation.id, message.id)
        self.messages = [m for m in self.messages if m.id < message.id]
        for widget in list(self._log.query(ChatMessage)):
            if widget.message_id is None or widget.message_id >= message.id:
                await widget.remove()

    def _answer(self) -> None:
        assert self.conversation is not None
        settings = self.conversation.settings
        params = ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=history(settings, self.messages),
            enable_thinking=settings.enable_thinking,
            max_tokens=settings.max_tokens,
        )
        self._generation = Generation(self.services, params, clock=self._clock)
        self.generating = True
        self._generation_worker = self._stream_answer(self._generation, self.conversation)

    @work(exclusive=True, group="chat-generation")
    async def _stream_answer(self, generation: Generation, conversation: Conversation) -> None:
        widget = ChatMessage("assistant", streaming=True)
        log = self._log
        await log.mount(widget)
        log.anchor()
        done: GenerationDone | None = None
        failed: GenerationFailed | None = None
        try:
            async for event in generation.events():
                if isinstance(event, ContentDelta):
                    await widget.append_content(event.text)
                elif isinstance(event, ReasoningDelta):
                    await widget.append_reasoning(event.text)
                elif isinstance(event, GenerationDone):
                    done = event
                else:
                    failed = event
        except Exception as error:
            # Whatever the balancer sends, the app keeps running; the log has the traceback.
            logger.exception("the answer could not be shown")
            failed = GenerationFailed(
                f"Unexpected data from the balancer: {error}",
                "Retry; if it repeats, the log file has the details.",
                generation.generated_by,
            )
        generated_by = done.generated_by if done is not None else generation.generated_by
        usage = done.usage if done is not None else None
        rate = done.tokens_per_second if done is not None else None
        stopped = failed is None and done is None and generation.stopped
        stored = await self.store.add_message(
            conversation.id,
            NewMessage(
                "assistant",
                widget.content,
                reasoning=widget.reasoning,
                outcome="failed" if failed is not None else "stopped" if stopped else "complete",
                problem=failed.problem if failed is not None else None,
                advice=failed.advice if failed is not None else None,
                generated_by=generated_by,
                usage=usage,
                tokens_per_second=rate,
            ),
        )
        widget.message_id = stored.id
        self.messages.append(stored)
        await widget.finish(
            summary=answer_summary(generated_by, usage, rate),
            stopped=stopped,
            problem=failed.problem if failed is not None else None,
            advice=failed.advice if failed is not None else "",
            retry_hint=self._retry_hint() if failed is not None and failed.retryable else "",
        )
        self._generation = None
        self.generating = False
        self._show_last_answer()

    async def stop_generation(self) -> None:
        """Stop the streaming answer, if any; it is kept (as stopped) with what arrived."""
        if self._generation is not None:
            await self._generation.stop()
        if self._generation_worker is not None and not self._generation_worker.is_finished:
            # The worker stores the stopped answer; waiting keeps later changes in order.
            with_timeout = asyncio.wait_for(self._generation_worker.wait(), timeout=5)
            try:
                await with_timeout
            except Exception:  # cancelled or failed: nothing more to wait for
                logger.debug("the answer worker ended abnormally", exc_info=True)

    # Actions.

    async def action_stop(self) -> None:
        if self.generating:
            if self._generation is not None:
                await self._generation.stop()
            return
        if self._editing is not None:
            self._editing = None
            self._prompt.clear()
            self._show_state()
            self.refresh_bindings()

    async def action_new_conversation(self) -> None:
        await self._start_new()
        self._prompt.focus()

    async def action_regenerate(self) -> None:
        if self.generating or not self.messages or self.conversation is None:
            return
        last = self.messages[-1]
        if last.role == "assistant":
            await self._drop_from(last)
        if not self.messages:
            return
        self._answer()

    def action_edit_last(self) -> None:
        if self.generating:
            return
        last_user = next((m for m in reversed(self.messages) if m.role == "user"), None)
        if last_user is None:
            return
        self._editing = last_user
        prompt = self._prompt
        prompt.text = last_user.content
        prompt.move_cursor(prompt.document.end)
        prompt.focus()
        self._show_state()
        self.refresh_bindings()

    @work(group="chat-dialogs")
    async def action_settings(self) -> None:
        title = self.conversation.title if self.conversation is not None else "the new conversation"
        settings = await self.app.push_screen_wait(ChatSettingsScreen(self.settings, title=title))
        if settings is not None:
            await self._apply_settings(settings)

    async def _apply_settings(self, settings: ConversationSettings) -> None:
        if self.conversation is None:
            self._draft = settings
        else:
            await self.store.update_settings(self.conversation.id, settings)
            self.conversation = await self.store.conversation(self.conversation.id)
        self._show_settings()

    async def action_toggle_thinking(self) -> None:
        current = self.settings
        enabled = not current.enable_thinking
        await self._apply_settings(
            ConversationSettings(current.system_prompt, current.max_tokens, enabled)
        )
        self.notify(f"Thinking {'on' if enabled else 'off'} for this conversation", timeout=2)

    async def action_export(self) -> None:
        if self.conversation is None or not self.messages:
            self.notify("Nothing to export yet", severity="warning", timeout=3)
            return
        path = self._export_dir / export_filename(self.conversation)
        text = conversation_markdown(self.conversation, self.messages)
        try:
            await asyncio.to_thread(path.write_text, text, encoding="utf-8")
        except OSError as error:
            self.notify(f"Export failed: {error}", severity="error")
            return
        self.notify(f"Exported to {path}", timeout=5)

    def action_search(self) -> None:
        sidebar = self._sidebar
        sidebar.display = True
        sidebar.focus_search()

    def action_toggle_sidebar(self) -> None:
        sidebar = self._sidebar
        sidebar.display = not sidebar.display
        if not sidebar.display:
            self._prompt.focus()

    def _last_answer_widget(self) -> ChatMessage | None:
        answers = [w for w in self._log.query(ChatMessage) if w.role == "assistant"]
        return answers[-1] if answers else None

    def action_copy_last_answer(self) -> None:
        widget = self._last_answer_widget()
        if widget is None:
            self.notify("No answer yet", severity="warning", timeout=2)
            return
        widget.action_copy_message()

    def action_copy_last_code(self) -> None:
        widget = self._last_answer_widget()
        blocks = code_blocks(widget.content) if widget is not None else []
        if not blocks:
            self.notify("The last answer has no code block", severity="warning", timeout=2)
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify("Copied the code block", timeout=2)

    def action_rename_current(self) -> None:
        if self.conversation is not None:
            self._rename(self.conversation.id)

    def action_delete_current(self) -> None:
        if self.conversation is not None:
            self._delete(self.conversation.id)
