"""A model source typed as text (default, a path, a URL, a Hugging Face link), checked live."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from paddler_tui.protocol.model_source import AgentDesiredModel
from paddler_tui.ui.model_source_text import (
    ModelSourceError,
    describe_model_source,
    format_model_source,
    parse_model_source,
)


class ClusterModelSource(Vertical):
    """Title, the text, and below it what the agents will do with it (or what is wrong)."""

    DEFAULT_CSS: ClassVar[str] = """
    ClusterModelSource {
        height: auto;
        margin-bottom: 1;
        .title { text-style: bold; }
        .description { color: $text-muted; padding-left: 1; }
        &.-invalid .description { color: $error; }
    }
    """

    def __init__(self, title: str, *, placeholder: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self._title = title
        self._placeholder = placeholder

    def compose(self) -> ComposeResult:
        yield Label(self._title, classes="title")
        yield Input(placeholder=self._placeholder, compact=True)
        yield Static(classes="description")

    def set_model(self, model: AgentDesiredModel) -> None:
        self.query_one(Input).value = format_model_source(model)
        self._describe()

    def focus_editor(self) -> None:
        self.query_one(Input).focus()

    def model(self) -> AgentDesiredModel:
        """Raise :class:`~paddler_tui.ui.model_source_text.ModelSourceError` if unparseable."""
        return parse_model_source(self.query_one(Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._describe()

    def _describe(self) -> bool:
        try:
            description = describe_model_source(self.model())
        except ModelSourceError as error:
            self.set_class(True, "-invalid")
            self.query_one(".description", Static).update(Text(str(error)))
            return False
        self.set_class(False, "-invalid")
        self.query_one(".description", Static).update(Text(description))
        return True
