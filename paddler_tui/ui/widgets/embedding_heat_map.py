"""The cosine-similarity matrix of the embeddings, drawn as a heat map."""

from __future__ import annotations

from typing import ClassVar

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget

from paddler_tui.ui.embedding_display import contrasting_text, heat_colour

# Up to this many documents each cell prints its value; beyond, cells are colour only.
LABELLED_LIMIT = 10
LABELLED_CELL = 5
PLAIN_CELL = 2


class EmbeddingHeatMap(Widget):
    """Rows and columns are documents in batch order; brighter means more similar."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingHeatMap {
        width: auto;
        height: auto;
        padding: 0 1;
    }
    """

    matrix: reactive[list[list[float | None]]] = reactive(list, layout=True)
    """Similarities, ``None`` where undefined."""
    labels: reactive[list[str]] = reactive(list, layout=True)
    """The document id of each row and column."""

    def show(self, labels: list[str], matrix: list[list[float | None]]) -> None:
        self.set_reactive(EmbeddingHeatMap.labels, labels)
        self.matrix = matrix

    @property
    def _cell(self) -> int:
        return LABELLED_CELL if len(self.labels) <= LABELLED_LIMIT else PLAIN_CELL

    @property
    def _label_width(self) -> int:
        return max((len(label) for label in self.labels), default=1) + 1

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return max(self._label_width + self._cell * len(self.labels), len(self._legend()))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.labels) + 2 if self.labels else 1

    def _legend(self) -> str:
        return "cosine: dark 0 → bright 1" if self.labels else "no embeddings yet"

    def render(self) -> Text:
        if not self.labels:
            return Text(self._legend(), style="dim")
        cell, label_width = self._cell, self._label_width
        lines = Text(" " * label_width, no_wrap=True, overflow="crop")
        for label in self.labels:
            lines.append(label[: cell - 1].rjust(cell - 1) + " ", style="bold")
        for label, row in zip(self.labels, self.matrix, strict=False):
            lines.append("\n")
            lines.append(label.rjust(label_width - 1) + " ", style="bold")
            for value in row:
                lines.append_text(_cell_text(value, cell))
        lines.append("\n")
        lines.append(self._legend(), style="dim")
        return lines


def _cell_text(value: float | None, width: int) -> Text:
    if value is None:
        return Text("-".center(width), style="dim")
    background = heat_colour(value)
    style = Style(
        bgcolor=Color.from_rgb(*background), color=Color.from_rgb(*contrasting_text(background))
    )
    if width < LABELLED_CELL:
        return Text(" " * width, style=style)
    # "-0.08" would not leave room for a gap; "-.08" does.
    number = f"{value:.2f}" if value >= 0 else f"-{abs(value):.2f}".replace("0.", ".", 1)
    return Text(number.rjust(width - 1) + " ", style=style)
