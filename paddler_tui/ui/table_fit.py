"""Filling DataTables from outside their own handlers: keyed rows, columns sized at once."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable


def fit_columns(table: DataTable[Text]) -> None:
    """Size every column to its widest cell now, then ask for the idle pass too.

    DataTable measures new rows on an idle pass of its own; rows that arrive before its message
    pump runs never get one, and the columns stay as wide as their headers.
    """
    for column in table.ordered_columns:
        cells = [cell.cell_len for cell in table.get_column(column.key)]
        column.content_width = max([column.label.cell_len, *cells])
    table.refresh()
    table.check_idle()


def show_keyed_rows(
    table: DataTable[Text], columns: Sequence[str], rows: Sequence[tuple[str, Sequence[Text]]]
) -> None:
    """Make ``table`` hold exactly ``rows`` (by key): rows that stay are updated in place, so
    the cursor and scroll position survive a live update."""
    wanted = {key for key, _ in rows}
    for stale in [row_key for row_key in table.rows if row_key.value not in wanted]:
        table.remove_row(stale)
    for key, cells in rows:
        if key in table.rows:
            for column, cell in zip(columns, cells, strict=True):
                table.update_cell(key, column, cell)
        else:
            table.add_row(*cells, key=key)
    fit_columns(table)
