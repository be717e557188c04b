"""The chat template override, edited next to the model's own template."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Checkbox, TextArea


class ClusterChatTemplate(Vertical):
    """Left: the override (used only while the box is ticked); right: the model's template."""

    DEFAULT_CSS: ClassVar[str] = """
    ClusterChatTemplate {
        height: 1fr;
        #use-override { margin-bottom: 1; }
        Horizontal { height: 1fr; }
        TextArea { width: 1fr; height: 1fr; border: round $primary 50%; }
        TextArea:focus { border: round $primary; }
        #model-template { color: $text-muted; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Checkbox(
            "Use my chat template instead of the model's", compact=True, id="use-override"
        )
        with Horizontal():
            override = TextArea(
                id="override",
                placeholder="A Jinja chat template, e.g. copied from the right and edited",
            )
            override.border_title = "my chat template"
            yield override
            model = TextArea(read_only=True, id="model-template")
            model.border_title = "the model's template"
            yield model

    def set_override(self, use: bool, content: str) -> None:
        self.query_one("#use-override", Checkbox).value = use
        self.query_one("#override", TextArea).load_text(content)

    def override(self) -> tuple[bool, str]:
        """Whether to use the override, and its text."""
        return (
            self.query_one("#use-override", Checkbox).value,
            self.query_one("#override", TextArea).text,
        )

    def set_model_template(self, template: str, source: str) -> None:
        area = self.query_one("#model-template", TextArea)
        area.load_text(template)
        area.border_title = f"the model's template · {source}"
