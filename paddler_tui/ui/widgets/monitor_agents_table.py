"""Agents with their slot bars, model, state, download progress and issues."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from paddler_tui.ui.monitor_view import AgentRow
from paddler_tui.ui.table_fit import show_keyed_rows

COLUMNS = ("agent", "slots", "model", "state", "download", "issues")


class MonitorAgentsTable(DataTable[Text]):
    """One row per agent, keyed by agent id; rows come and go with the agents."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorAgentsTable {
        height: auto;
        max-height: 10;
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

    def show(self, rows: list[AgentRow], *, warning: str, error: str) -> None:
        self._ensure_columns()
        keyed = [(row.id, _cells(row, warning=warning, error=error)) for row in rows]
        show_keyed_rows(self, COLUMNS, keyed)


def _cells(row: AgentRow, *, warning: str, error: str) -> list[Text]:
    busy_style = warning if row.total and row.busy >= row.total else ""
    state_style = "" if row.state == "applied" else warning
    return [
        Text(row.name),
        Text(row.slots, style=busy_style),
        Text(row.model),
        Text(row.state, style=state_style),
        Text(row.download),
        Text(row.issues, style=error),
    ]
