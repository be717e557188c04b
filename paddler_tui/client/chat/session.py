"""The chat's open conversation and its messages, kept in step with the store.

A conversation is created with its first prompt (until then its settings are a draft), and the
request for an answer is built from its stored turns.
"""

from __future__ import annotations

from collections.abc import Sequence

from paddler_tui.client.chat.conversation_store import (
    Conversation,
    ConversationSettings,
    ConversationStore,
    NewMessage,
    StoredMessage,
)
from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.requests import ContinueFromConversationHistoryParams

TITLE_LENGTH = 40


def title_from_prompt(prompt: str) -> str:
    """A conversation's title: its first prompt's first line, shortened."""
    first_line = next((line for line in prompt.splitlines() if line.strip()), "")
    title = " ".join(first_line.split())
    if len(title) > TITLE_LENGTH:
        return title[: TITLE_LENGTH - 1].rstrip() + "…"
    return title or "New conversation"


def history(
    settings: ConversationSettings, messages: Sequence[StoredMessage]
) -> list[ConversationMessage]:
    """What the model sees: the system prompt, then every turn that has text.

    A failed answer has no text and is left out; a stopped one keeps what was shown.
    """
    turns: list[ConversationMessage] = []
    if settings.system_prompt.strip():
        turns.append(ConversationMessage(role="system", content=settings.system_prompt))
    turns.extend(
        ConversationMessage(role=message.role, content=message.content)
        for message in messages
        if message.content
    )
    return turns


class ChatSession:
    """``conversation`` is None for a new one, which the next prompt creates with the draft
    settings; ``search`` filters the conversations listed."""

    def __init__(self, store: ConversationStore, defaults: ConversationSettings) -> None:
        self.store = store
        self._defaults = defaults
        self._draft = defaults
        self.conversation: Conversation | None = None
        self.messages: list[StoredMessage] = []
        self.search = ""

    @property
    def settings(self) -> ConversationSettings:
        return self.conversation.settings if self.conversation is not None else self._draft

    @property
    def current_id(self) -> int | None:
        return self.conversation.id if self.conversation is not None else None

    async def listed(self) -> list[Conversation]:
        """The conversations matching the search, newest first."""
        return await self.store.conversations(self.search)

    async def open(self, conversation_id: int) -> bool:
        """Make ``conversation_id`` the open conversation; False if it no longer exists."""
        conversation = await self.store.conversation(conversation_id)
        if conversation is None:
            return False
        self.conversation = conversation
        self.messages = await self.store.messages(conversation_id)
        return True

    def start_new(self) -> None:
        self.conversation = None
        self.messages = []
        self._draft = self._defaults

    async def add_prompt(self, text: str) -> StoredMessage:
        """Store the user's ``text``, creating the conversation with its first prompt."""
        if self.conversation is None:
            self.conversation = await self.store.create(title_from_prompt(text), self._draft)
        return await self.add_message(self.conversation.id, NewMessage("user", text))

    async def add_message(self, conversation_id: int, message: NewMessage) -> StoredMessage:
        stored = await self.store.add_message(conversation_id, message)
        self.messages.append(stored)
        return stored

    async def drop_from(self, message: StoredMessage) -> None:
        """Forget ``message`` and every later message of the open conversation."""
        assert self.conversation is not None
        await self.store.delete_messages_from(self.conversation.id, message.id)
        self.messages = [m for m in self.messages if m.id < message.id]

    def request(self) -> ContinueFromConversationHistoryParams:
        """The request for the next answer of the open conversation."""
        assert self.conversation is not None
        settings = self.conversation.settings
        return ContinueFromConversationHistoryParams(
            add_generation_prompt=True,
            conversation_history=history(settings, self.messages),
            enable_thinking=settings.enable_thinking,
            max_tokens=settings.max_tokens,
        )

    async def apply_settings(self, settings: ConversationSettings) -> None:
        """The open conversation's settings, stored; a new one's draft."""
        if self.conversation is None:
            self._draft = settings
        else:
            await self.store.update_settings(self.conversation.id, settings)
            self.conversation = await self.store.conversation(self.conversation.id)

    async def rename(self, conversation_id: int, title: str) -> None:
        await self.store.rename(conversation_id, title)
        if self.current_id == conversation_id:
            self.conversation = await self.store.conversation(conversation_id)

    async def delete(self, conversation_id: int) -> None:
        await self.store.delete(conversation_id)
