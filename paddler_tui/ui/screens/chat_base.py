"""What the chat screen's concerns share: the session, the parts, the status line, the answer.

:class:`~paddler_tui.ui.screens.chat.ChatScreen` composes the concerns built on this base:
conversations (:mod:`~paddler_tui.ui.screens.chat_conversations`) and answers
(:mod:`~paddler_tui.ui.screens.chat_answers`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from textual.reactive import reactive
from textual.screen import Screen
from textual.worker import Worker

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.chat.conversation_store import (
    Conversation,
    ConversationSettings,
    ConversationStore,
    StoredMessage,
)
from paddler_tui.client.chat.generation import Generation
from paddler_tui.client.chat.session import ChatSession
from paddler_tui.ui.chat_text import answer_summary, settings_summary
from paddler_tui.ui.config import ChatDefaults
from paddler_tui.ui.key_bindings import shown_key
from paddler_tui.ui.widgets.chat_log import ChatLog
from paddler_tui.ui.widgets.chat_prompt import ChatPrompt
from paddler_tui.ui.widgets.chat_sidebar import ChatSidebar
from paddler_tui.ui.widgets.chat_status import ChatStatus

logger = logging.getLogger(__name__)


class ChatScreenBase(Screen[None]):
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
        self.session = ChatSession(
            store,
            ConversationSettings(
                system_prompt=defaults.system_prompt,
                max_tokens=defaults.max_tokens,
                enable_thinking=defaults.enable_thinking,
            ),
        )
        self._export_dir = export_dir
        self._clock = clock
        self._cursor_blink = cursor_blink
        # The user message being edited: sending replaces it and everything after it.
        self._editing: StoredMessage | None = None
        self._generation: Generation | None = None
        self._generation_worker: Worker[None] | None = None

    @property
    def conversation(self) -> Conversation | None:
        return self.session.conversation

    @property
    def messages(self) -> list[StoredMessage]:
        return self.session.messages

    # Parts.

    @property
    def _log(self) -> ChatLog:
        return self.query_one(ChatLog)

    @property
    def _prompt(self) -> ChatPrompt:
        return self.query_one(ChatPrompt)

    @property
    def _status(self) -> ChatStatus:
        return self.query_one(ChatStatus)

    @property
    def _sidebar(self) -> ChatSidebar:
        return self.query_one(ChatSidebar)

    async def _refresh_sidebar(self) -> list[Conversation]:
        conversations = await self.session.listed()
        self._sidebar.show(conversations, self.session.current_id)
        return conversations

    def _retry_hint(self) -> str:
        return f"Press {shown_key(self.app, 'chat.regenerate', 'ctrl+r')} to retry."

    # The status line.

    def _show_settings(self) -> None:
        self._status.settings = settings_summary(self.session.settings)

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

    def _show_all(self) -> None:
        self._show_settings()
        self._show_last_answer()
        self._show_state()
        self.refresh_bindings()

    def watch_generating(self) -> None:
        self._show_state()

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
