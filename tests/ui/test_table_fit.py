"""Keyed rows in a live table: columns and the scrollable width follow cells changed in place."""

from __future__ import annotations

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from paddler_tui.ui.table_fit import show_keyed_rows

COLUMNS = ["name", "value"]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[Text] = DataTable()
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table


def rows(value: str) -> list[tuple[str, list[Text]]]:
    return [("a", [Text("alpha"), Text(value)]), ("b", [Text("beta"), Text("1")])]


async def test_the_scrollable_width_follows_a_cell_that_grows_and_shrinks_in_place() -> None:
    app = TableApp()
    async with app.run_test(size=(40, 10)) as pilot:
        table: DataTable[Text] = app.query_one(DataTable)
        show_keyed_rows(table, COLUMNS, rows("1"))
        await pilot.pause()
        narrow = table.virtual_size.width
        # Padding of one on each side of each column: header "value" is the widest cell.
        assert narrow == len("alpha") + len("value") + 4

        show_keyed_rows(table, COLUMNS, rows("x" * 60))
        await pilot.pause()
        assert table.virtual_size.width == narrow - len("value") + 60
        assert table.show_horizontal_scrollbar

        show_keyed_rows(table, COLUMNS, rows("2"))
        await pilot.pause()
        assert table.virtual_size.width == narrow
        assert [row.key.value for row in table.ordered_rows] == ["a", "b"]
