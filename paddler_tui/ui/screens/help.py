"""Every key of the current screen, with the binding ids a keymap in config.toml can remap."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label

from paddler_tui.ui.key_bindings import KeyRow


class HelpScreen(ModalScreen[None]):
    """| Key | Binding id | Action |
    |---|---|---|
    | escape, f1, q | help.close | Close |
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "close", "Close", id="help.close"),
    ]

    def __init__(self, rows: Sequence[KeyRow], *, config_file: Path | None) -> None:
        super().__init__()
        self._rows = rows
        self._config_file = config_file

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("Keys", classes="dialog-title")
            table: DataTable[str] = DataTable(id="help-keys", cursor_type="row", zebra_stripes=True)
            table.add_columns("Key", "Action", "Where", "Binding id")
            for row in self._rows:
                table.add_row(row.keys, row.description, row.context, row.binding_id)
            yield table
            where = f" in {self._config_file}" if self._config_file is not None else ""
            yield Label(
                f'Remap a key with [keymap] "binding.id" = "keys"{where}. Esc closes.',
                classes="dialog-hint",
                markup=False,
            )

    def action_close(self) -> None:
        self.dismiss(None)
