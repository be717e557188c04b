"""What the chat session derives from a conversation: its title and what the model sees."""

from __future__ import annotations

from typing import Any

from paddler_tui.client.chat.conversation_store import ConversationSettings, Role, StoredMessage
from paddler_tui.client.chat.session import history, title_from_prompt

SETTINGS = ConversationSettings(system_prompt="Be brief.", max_tokens=64, enable_thinking=False)


def message(role: Role, content: str, **fields: Any) -> StoredMessage:
    return StoredMessage(role=role, content=content, id=1, conversation_id=1, **fields)


def test_titles() -> None:
    assert title_from_prompt("\n\n  What is   the capital\nof France?") == "What is the capital"
    assert title_from_prompt("x" * 100) == "x" * 39 + "…"
    assert title_from_prompt("   ") == "New conversation"


def test_history_has_the_system_prompt_and_skips_failed_answers() -> None:
    turns = history(
        SETTINGS,
        [
            message("user", "Hi"),
            message("assistant", "", outcome="failed", problem="503"),
            message("user", "Hi again"),
            message("assistant", "Hel", outcome="stopped"),
        ],
    )
    assert [(t.role, t.text_content()) for t in turns] == [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("user", "Hi again"),
        ("assistant", "Hel"),
    ]
    assert history(ConversationSettings("  ", 1, False), [])[:1] == []
