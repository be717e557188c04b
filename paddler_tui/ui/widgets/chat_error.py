"""An answer that failed, in place of the answer: what went wrong and what to do about it."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


class ChatError(Static):
    DEFAULT_CSS = """
    ChatError {
        height: auto;
        border-left: thick $error;
        padding: 0 1;
        margin: 0 0 1 0;
        background: $error 10%;
    }
    """

    def __init__(self, problem: str, advice: str, *, retry_hint: str = "") -> None:
        text = Content.from_markup(
            "[bold $text-error]$problem[/]\n$advice", problem=problem, advice=advice
        )
        if retry_hint:
            text += Content.from_markup("\n[dim]$hint[/]", hint=retry_hint)
        super().__init__(text)
        self.problem = problem
        self.advice = advice
