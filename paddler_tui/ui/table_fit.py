"""Filling DataTables from outside their own handlers: keyed rows, columns sized at once."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.geometry import Size
from textual.widgets import DataTable


def fit_columns(table: DataTable[Text]) -> None:
    """Size every column to its widest cell now, then ask for the idle pass too.

    DataTable measures new rows on an idle pass of its own; rows that arrive before its message
    pump runs never get one, and the columns stay as wide as their headers. It sizes its
    scrollable width only for new rows too, so a column that grows or shrinks in place would
    leave the horizontal scrollbar measuring the old width.
    """
    for column in table.ordered_columns:
        cells = [cell.cell_len for cell in table.get_column(column.key)]
        column.content_width = max([column.label.cell_len, *cells])
    width = sum(column.get_render_width(table) for column in table.ordered_columns)
    table.virtual_size = Size(width, table.virtual_size.height)
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
