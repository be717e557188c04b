"""The tokens a fake agent answers with: content, and the Done that ends a request."""

from __future__ import annotations

from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken, Done
from paddler_tui.protocol.usage import TokenUsage


def token(text: str) -> GeneratedToken:
    return GeneratedToken(value=ContentToken(value=text))


def done() -> GeneratedToken:
    return GeneratedToken(value=Done(usage=TokenUsage.zero()))
