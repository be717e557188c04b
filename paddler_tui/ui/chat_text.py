"""Text the chat shows about answers and settings: footers, the status line, code blocks."""

from __future__ import annotations

from markdown_it import MarkdownIt

from paddler_tui.client.chat.conversation_store import ConversationSettings
from paddler_tui.protocol.usage import TokenUsage


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


def settings_summary(settings: ConversationSettings) -> str:
    """``max 1024 tokens · thinking off · system prompt``, for the status line."""
    parts = [
        f"max {settings.max_tokens} tokens",
        f"thinking {'on' if settings.enable_thinking else 'off'}",
    ]
    if settings.system_prompt.strip():
        parts.append("system prompt")
    return " · ".join(parts)


def code_blocks(markdown: str) -> list[str]:
    """The contents of every fenced or indented code block, in order."""
    tokens = MarkdownIt("commonmark").parse(markdown)
    return [token.content for token in tokens if token.type in ("fence", "code_block")]
