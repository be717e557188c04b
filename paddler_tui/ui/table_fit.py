"""Sizing a DataTable's columns to their content at once."""

from __future__ import annotations

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
