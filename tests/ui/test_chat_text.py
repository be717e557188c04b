"""Text the chat shows about answers: footers and code blocks."""

from __future__ import annotations

from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.ui.chat_text import answer_summary, code_blocks


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
