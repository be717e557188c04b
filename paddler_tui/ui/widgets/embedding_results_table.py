"""The embeddings as they arrive: one row per document."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from paddler_tui.ui.embedding_math import format_values
from paddler_tui.ui.embedding_results import ResultRow
from paddler_tui.ui.table_fit import fit_columns

FIRST_VALUES = 3


class EmbeddingResultsTable(DataTable[Text]):
    """id, the agent that embedded it, dimensions, norm and the first components."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingResultsTable {
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        # Results can arrive before this table's own mount handler ran.
        if not self.columns:
            self.add_column(Text("id"), key="id")
            self.add_column(Text("agent"), key="agent")
            self.add_column(Text("dims", justify="right"), key="dims")
            self.add_column(Text("norm", justify="right"), key="norm")
            self.add_column(Text("first values"), key="values")

    def reset(self) -> None:
        self.clear()

    def add_result(self, row: ResultRow) -> None:
        self._ensure_columns()
        self.add_row(
            Text(row.document_id),
            Text(row.agent or "—"),
            Text(str(len(row.embedding)), justify="right"),
            Text(f"{row.norm:.4f}", justify="right"),
            Text(format_values(row.embedding, FIRST_VALUES)),
            key=row.document_id,
        )
        fit_columns(self)
