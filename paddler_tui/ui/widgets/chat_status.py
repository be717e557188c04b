"""The chat's status line: what is happening, the conversation's settings, the last answer."""

from __future__ import annotations

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget


class ChatStatus(Widget):
    DEFAULT_CSS = """
    ChatStatus {
        height: 1;
        padding: 0 1;
        background: $boost;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    state: reactive[str] = reactive("ready")
    """What the chat is doing: ``ready``, ``generating`` or ``editing``."""
    settings: reactive[str] = reactive("")
    """The current conversation's settings, short."""
    last_answer: reactive[str] = reactive("")
    """Agent, usage and tokens/s of the newest answer."""

    def render(self) -> Content:
        if self.state == "generating":
            state = Content.from_markup("[b $warning]● generating[/] [dim]esc stops[/]")
        elif self.state == "editing":
            state = Content.from_markup(
                "[b $accent]✎ editing the last message[/] [dim]esc cancels[/]"
            )
        else:
            state = Content.from_markup("[$success]● ready[/]")
        parts = [state]
        if self.last_answer:
            parts.append(Content(self.last_answer))
        if self.settings:
            parts.append(Content.styled(self.settings, "dim"))
        return Content(" │ ").join(parts)
