"""The embeddings as they arrive: one row per document."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from paddler_tui.client.embeddings.results import ResultRow
from paddler_tui.ui.embedding_display import format_values
from paddler_tui.ui.table_fit import fit_columns
from paddler_tui.ui.widgets.live_table import LiveTable

FIRST_VALUES = 3
COLUMNS = (
    ("id", Text("id")),
    ("agent", Text("agent")),
    ("dims", Text("dims", justify="right")),
    ("norm", Text("norm", justify="right")),
    ("values", Text("first values")),
)


class EmbeddingResultsTable(LiveTable):
    """id, the agent that embedded it, dimensions, norm and the first components."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingResultsTable {
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)

    def reset(self) -> None:
        self.clear()

    def add_result(self, row: ResultRow) -> None:
        self.ensure_columns()
        self.add_row(
            Text(row.document_id),
            Text(row.agent or "—"),
            Text(str(len(row.embedding)), justify="right"),
            Text(f"{row.norm:.4f}", justify="right"),
            Text(format_values(row.embedding, FIRST_VALUES)),
            key=row.document_id,
        )
        fit_columns(self)
