"""One message of a conversation: who, the thinking block, the Markdown text, a footer line."""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownFence, MarkdownStream

from paddler_tui.client.chat.conversation_store import Role, StoredMessage
from paddler_tui.ui.chat_text import answer_summary, code_blocks
from paddler_tui.ui.widgets.chat_error import ChatError
from paddler_tui.ui.widgets.chat_thinking import ChatThinking


class ChatMessage(Vertical, can_focus=True):
    """A user or assistant message; an assistant message can be streamed into.

    Click a code block to copy it.

    | Key | Binding id | Action |
    |---|---|---|
    | y | chat.copy_message | Copy the message's text |
    | b | chat.copy_code | Copy a code block (again: the next one) |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "copy_message", "Copy", id="chat.copy_message"),
        Binding("b", "copy_code", "Copy code", id="chat.copy_code"),
    ]

    DEFAULT_CSS = """
    ChatMessage {
        height: auto;
        padding: 0 1;
        margin: 0 0 1 0;
        &:focus { background: $boost; }
        .chat-role { text-style: bold; color: $text-primary; }
        &.-user .chat-role { color: $text-accent; }
        .chat-meta { color: $text-muted; }
        Markdown { margin: 0; padding: 0; }
        Markdown > MarkdownBlock:last-child { margin-bottom: 0; }
    }
    """

    def __init__(
        self,
        role: Role,
        content: str = "",
        *,
        reasoning: str = "",
        streaming: bool = False,
        message_id: int | None = None,
    ) -> None:
        super().__init__(classes=f"-{role}")
        self.role: Role = role
        self.content = content
        self.message_id = message_id
        self._body = Markdown(content)
        self._thinking = ChatThinking(reasoning) if reasoning else None
        self._header = Static(self._role_label(waiting=streaming), classes="chat-role")
        self._meta = Static("", classes="chat-meta")
        self._meta.display = False
        self._error: ChatError | None = None
        self._stream: MarkdownStream | None = None
        self._code_index = 0

    @classmethod
    def from_stored(cls, message: StoredMessage, *, retry_hint: str = "") -> ChatMessage:
        widget = cls(
            message.role, message.content, reasoning=message.reasoning, message_id=message.id
        )
        if message.role == "assistant":
            widget._show_ending(
                summary=answer_summary(
                    message.generated_by, message.usage, message.tokens_per_second
                ),
                stopped=message.outcome == "stopped",
            )
        if message.outcome == "failed":
            widget._error = ChatError(
                message.problem or "failed", message.advice or "", retry_hint=retry_hint
            )
        return widget

    def _role_label(self, *, waiting: bool = False, stopped: bool = False) -> str:
        name = "You" if self.role == "user" else "Assistant"
        if waiting:
            return f"{name} · waiting for a slot…"
        return f"{name} · stopped" if stopped else name

    def compose(self) -> ComposeResult:
        yield self._header
        if self._thinking is not None:
            yield self._thinking
        yield self._body
        if self._error is not None:
            yield self._error
        yield self._meta

    @property
    def reasoning(self) -> str:
        return self._thinking.reasoning if self._thinking is not None else ""

    @property
    def summary(self) -> str:
        return str(self._meta.content) if self._meta.display else ""

    async def append_content(self, text: str) -> None:
        if self._stream is None:
            self._header.update(self._role_label())
            if self._thinking is not None:
                await self._thinking.finish()
            self._stream = Markdown.get_stream(self._body)
        self.content += text
        await self._stream.write(text)

    async def append_reasoning(self, text: str) -> None:
        if self._thinking is None:
            self._header.update(self._role_label())
            self._thinking = ChatThinking(streaming=True)
            await self.mount(self._thinking, before=self._body)
        await self._thinking.append(text)

    async def finish(
        self,
        *,
        summary: str,
        stopped: bool = False,
        problem: str | None = None,
        advice: str = "",
        retry_hint: str = "",
    ) -> None:
        """End streaming: render the whole text once (fixes half-open fences), add the footer."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        if self._thinking is not None:
            await self._thinking.finish()
        await self._body.update(self.content)
        if problem is not None:
            self._error = ChatError(problem, advice, retry_hint=retry_hint)
            await self.mount(self._error, before=self._meta)
        self._show_ending(summary=summary, stopped=stopped)

    def _show_ending(self, *, summary: str, stopped: bool) -> None:
        self._header.update(self._role_label(stopped=stopped))
        self._meta.update(summary)
        self._meta.display = bool(summary)

    def action_copy_message(self) -> None:
        self.app.copy_to_clipboard(self.content)
        self.notify("Copied the message", timeout=2)

    def action_copy_code(self) -> None:
        blocks = code_blocks(self.content)
        if not blocks:
            self.notify("This message has no code block", severity="warning", timeout=2)
            return
        index = self._code_index % len(blocks)
        self._code_index = index + 1
        self.app.copy_to_clipboard(blocks[index])
        self.notify(f"Copied code block {index + 1} of {len(blocks)}", timeout=2)

    def on_click(self, event: events.Click) -> None:
        if event.widget is None:
            return
        for node in event.widget.ancestors_with_self:
            if node is self:
                return
            if isinstance(node, MarkdownFence):
                self.app.copy_to_clipboard(node.code)
                self.notify("Copied the code block", timeout=2)
                return
