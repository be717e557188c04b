"""What the chat derives from conversations, and how failures are explained."""

from __future__ import annotations

from typing import Any

from paddler_tui.protocol.generated_token import ChatTemplateError, TokenGenerationDisabled
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.ui.chat_text import (
    answer_summary,
    code_blocks,
    conversation_markdown,
    export_filename,
    history,
    title_from_prompt,
)
from paddler_tui.ui.conversation_store import (
    Conversation,
    ConversationSettings,
    Role,
    StoredMessage,
)
from paddler_tui.ui.generation import advice_for_error, failure_for_token

SETTINGS = ConversationSettings(system_prompt="Be brief.", max_tokens=64, enable_thinking=False)


def message(role: Role, content: str, **fields: Any) -> StoredMessage:
    return StoredMessage(role=role, content=content, id=1, conversation_id=1, **fields)


def test_titles() -> None:
    assert title_from_prompt("\n\n  What is   the capital\nof France?") == "What is the capital"
    assert title_from_prompt("x" * 100) == "x" * 39 + "…"
    assert title_from_prompt("   ") == "New conversation"


def test_answer_summary() -> None:
    usage = TokenUsage.zero().model_copy(
        update={"prompt_tokens": 20, "cached_prompt_tokens": 8, "content_tokens": 5}
    )
    assert (
        answer_summary("a1", usage, 41.25) == "a1 · 20 prompt (8 cached) · 5 generated · 41.2 tok/s"
    )
    assert answer_summary(None, None, 2.0) == "2.0 tok/s"
    assert answer_summary(None, None, None) == ""


def test_code_blocks() -> None:
    text = "Try:\n\n```py\nprint(1)\n```\n\nor\n\n    indented()\n\nand `inline`."
    assert code_blocks(text) == ["print(1)\n", "indented()\n"]


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


def test_advice_for_each_balancer_error() -> None:
    assert "buffer" in advice_for_error(503, "Buffered requests overflow")
    assert "shutting down" in advice_for_error(503, "balancer is shutting down")
    assert "--buffered-request-timeout" in advice_for_error(
        504, "Waiting for available slot timed out"
    )
    assert "--inference-item-timeout" in advice_for_error(
        504, "Inference timed out after 30000ms waiting for next token. Increase …"
    )
    assert "disconnected" in advice_for_error(502, "Agent controller connection closed")
    disabled = failure_for_token(TokenGenerationDisabled(value="off"), "a1")
    assert disabled.retryable and "embeddings" in disabled.advice
    template = failure_for_token(ChatTemplateError(value="bad template"), None)
    assert template.problem == "ChatTemplateError: bad template"
    assert not template.retryable
