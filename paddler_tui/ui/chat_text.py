"""Text the chat derives from conversations: titles, footers, code blocks, history, exports."""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it import MarkdownIt

from paddler_tui.protocol.conversation import ConversationMessage
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.ui.conversation_store import (
    Conversation,
    ConversationSettings,
    StoredMessage,
)

TITLE_LENGTH = 40
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


def title_from_prompt(prompt: str) -> str:
    """A conversation's title: its first prompt's first line, shortened."""
    first_line = next((line for line in prompt.splitlines() if line.strip()), "")
    title = " ".join(first_line.split())
    if len(title) > TITLE_LENGTH:
        return title[: TITLE_LENGTH - 1].rstrip() + "…"
    return title or "New conversation"


def answer_summary(
    generated_by: str | None, usage: TokenUsage | None, tokens_per_second: float | None
) -> str:
    """``agent · 12 prompt (4 cached) · 30 generated · 55.1 tok/s``, leaving out what is unknown."""
    parts = [generated_by] if generated_by else []
    if usage is not None:
        cached = f" ({usage.cached_prompt_tokens} cached)" if usage.cached_prompt_tokens else ""
        parts.append(f"{usage.prompt_tokens} prompt{cached}")
        parts.append(f"{usage.completion_tokens} generated")
    if tokens_per_second is not None:
        parts.append(f"{tokens_per_second:.1f} tok/s")
    return " · ".join(parts)


def code_blocks(markdown: str) -> list[str]:
    """The contents of every fenced or indented code block, in order."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [token.content for token in tokens if token.type in ("fence", "code_block")]


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


def export_filename(conversation: Conversation) -> str:
    slug = _SLUG_UNSAFE.sub("-", conversation.title.lower()).strip("-")[:48] or "conversation"
    return f"{slug}-{conversation.id}.md"


def conversation_markdown(conversation: Conversation, messages: Sequence[StoredMessage]) -> str:
    """The whole conversation as a Markdown document."""
    lines = [f"# {conversation.title}", ""]
    settings = conversation.settings
    lines.append(
        f"max tokens: {settings.max_tokens} · thinking: "
        f"{'on' if settings.enable_thinking else 'off'}"
    )
    lines.append("")
    if settings.system_prompt.strip():
        lines.extend(["## System", "", settings.system_prompt.strip(), ""])
    for message in messages:
        if message.role == "user":
            lines.extend(["## You", "", message.content, ""])
            continue
        lines.extend(["## Assistant", ""])
        if message.reasoning:
            quoted = "\n".join(f"> {line}" for line in message.reasoning.strip().splitlines())
            lines.extend(["> **Thinking**", ">", quoted, ""])
        if message.content:
            lines.extend([message.content, ""])
        if message.outcome == "stopped":
            lines.extend(["*(stopped)*", ""])
        if message.outcome == "failed":
            lines.extend([f"**Error:** {message.problem}", ""])
        summary = answer_summary(message.generated_by, message.usage, message.tokens_per_second)
        lines.extend([f"*{summary}*", ""])
    return "\n".join(lines)
