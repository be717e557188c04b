"""A DataTable that live data fills from outside: its columns exist before its first rows."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from paddler_tui.ui.table_fit import show_keyed_rows

Column = tuple[str, Text]  # key, header


def plain_columns(*names: str) -> tuple[Column, ...]:
    """Columns whose key is also their header."""
    return tuple((name, Text(name)) for name in names)


class LiveTable(DataTable[Text]):
    """Row cursor and zebra stripes, with ``columns`` added on mount or before the first data,
    whichever comes first: data can arrive before the table's own mount handler ran."""

    def __init__(self, columns: Sequence[Column], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._column_specs = tuple(columns)

    def on_mount(self) -> None:
        self.ensure_columns()

    def ensure_columns(self) -> None:
        if not self.columns:
            for key, header in self._column_specs:
                self.add_column(header, key=key)

    def show_keyed(self, rows: Sequence[tuple[str, Sequence[Text]]]) -> None:
        """Hold exactly ``rows`` (key, cells), updating the rows that stay in place."""
        self.ensure_columns()
        show_keyed_rows(self, [key for key, _ in self._column_specs], rows)
