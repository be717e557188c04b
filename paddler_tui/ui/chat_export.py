"""A conversation exported as a Markdown document, named after its title."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from pathlib import Path

from paddler_tui.client.chat.conversation_store import Conversation, StoredMessage
from paddler_tui.ui.chat_text import answer_summary

_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


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


async def export_conversation(
    directory: Path, conversation: Conversation, messages: Sequence[StoredMessage]
) -> Path:
    """Write the document into ``directory`` (off the event loop); its path. OSError if not."""
    path = directory / export_filename(conversation)
    text = conversation_markdown(conversation, messages)
    await asyncio.to_thread(path.write_text, text, encoding="utf-8")
    return path
