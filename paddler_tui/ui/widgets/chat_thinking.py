"""The model's reasoning (``ReasoningToken``s), folded away once the answer starts."""

from __future__ import annotations

from textual.widgets import Collapsible, Markdown
from textual.widgets.markdown import MarkdownStream


class ChatThinking(Collapsible):
    """Open and titled "thinking…" while reasoning streams; "thoughts" when it is over."""

    DEFAULT_CSS = """
    ChatThinking {
        margin: 0;
        padding: 0;
        border-top: none;
        background: transparent;
        color: $text-muted;
        & > Contents { padding: 0 0 0 2; }
        Markdown { color: $text-muted; margin: 0; padding: 0; }
    }
    """

    def __init__(self, reasoning: str = "", *, streaming: bool = False) -> None:
        self._markdown = Markdown(reasoning)
        super().__init__(
            self._markdown,
            title="thinking…" if streaming else "thoughts",
            collapsed=not streaming,
        )
        self.reasoning = reasoning
        self._stream: MarkdownStream | None = None

    async def append(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self._markdown)
        self.reasoning += text
        await self._stream.write(text)

    async def finish(self) -> None:
        """End the stream and fold the block (the answer is what matters now)."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.title = "thoughts"
        self.collapsed = True
