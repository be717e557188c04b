"""A conversation exported as Markdown."""

from __future__ import annotations

from typing import Any

from paddler_tui.client.chat.conversation_store import (
    Conversation,
    ConversationSettings,
    Role,
    StoredMessage,
)
from paddler_tui.ui.chat_export import conversation_markdown, export_filename

SETTINGS = ConversationSettings(system_prompt="Be brief.", max_tokens=64, enable_thinking=False)


def message(role: Role, content: str, **fields: Any) -> StoredMessage:
    return StoredMessage(role=role, content=content, id=1, conversation_id=1, **fields)


def test_markdown_export() -> None:
    conversation = Conversation(7, "Eggs: how long?", SETTINGS, 0.0, 0.0)
    text = conversation_markdown(
        conversation,
        [
            message("user", "How long?"),
            message("assistant", "Nine minutes.", reasoning="Boiled.\nHard.", generated_by="a1"),
            message("assistant", "", outcome="failed", problem="504: timed out"),
        ],
    )
    assert export_filename(conversation) == "eggs-how-long-7.md"
    assert text.splitlines()[:3] == ["# Eggs: how long?", "", "max tokens: 64 · thinking: off"]
    assert "## System\n\nBe brief." in text
    assert "> **Thinking**\n>\n> Boiled.\n> Hard." in text
    assert "Nine minutes.\n\n*a1*" in text
    assert "**Error:** 504: timed out" in text
