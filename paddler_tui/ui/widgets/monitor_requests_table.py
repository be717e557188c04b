"""In-flight requests, each with a clock racing its timeout."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from paddler_tui.ui.monitor_view import RequestRow
from paddler_tui.ui.table_fit import show_keyed_rows

COLUMNS = ("request", "kind", "phase", "agent", "tokens", "clock")
SHORT_ID = 8


class MonitorRequestsTable(DataTable[Text]):
    """The clock turns warning, then error colour, as it nears the timeout."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorRequestsTable {
        height: auto;
        max-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        # Data can arrive before this table's own mount handler ran.
        if not self.columns:
            for column in COLUMNS:
                self.add_column(Text(column), key=column)

    def show(self, rows: list[RequestRow], *, styles: dict[str, str]) -> None:
        self._ensure_columns()
        keyed = [
            (
                row.id,
                [
                    Text(row.id[:SHORT_ID]),
                    Text(row.kind),
                    Text(row.phase),
                    Text(row.agent),
                    Text(str(row.tokens), justify="right"),
                    Text(row.clock, style=styles.get(row.level, "")),
                ],
            )
            for row in rows
        ]
        show_keyed_rows(self, COLUMNS, keyed)
