"""A loaded model's GGUF metadata, as one agent reports it."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Select

from paddler_tui.ui.table_fit import fit_columns
from paddler_tui.ui.widgets.live_table import LiveTable, plain_columns

# Long values (templates, licences) are cut in the table; the template has its own tab.
VALUE_WIDTH = 160


class ClusterMetadata(Vertical):
    """Pick an agent; its model's metadata keys and values are listed."""

    DEFAULT_CSS: ClassVar[str] = """
    ClusterMetadata {
        height: 1fr;
        Horizontal { height: 1; margin-bottom: 1; }
        Label { padding-right: 1; }
        #metadata-agent { width: 40; }
        DataTable { height: 1fr; }
    }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("agent")
            yield Select[str]([], prompt="no agent with a model", compact=True, id="metadata-agent")
        yield LiveTable(plain_columns("key", "value"))

    def set_agents(self, agents: list[tuple[str, str]]) -> None:
        """``(label, agent id)`` of the agents that have a model; keeps the current choice."""
        select: Select[str] = self.query_one("#metadata-agent", Select)
        current = None if select.is_blank() else select.value
        select.set_options(agents)
        ids = [agent_id for _, agent_id in agents]
        if current in ids:
            select.value = current
        elif ids:
            select.value = ids[0]

    @property
    def agent_id(self) -> str | None:
        select: Select[str] = self.query_one("#metadata-agent", Select)
        return None if select.is_blank() else str(select.value)

    def show(self, metadata: dict[str, str] | None, note: str = "") -> None:
        tables = self.query(LiveTable)
        if not tables:
            return  # torn down (the app quit) while the metadata was on its way
        table = tables.first()
        table.ensure_columns()
        table.clear()
        if metadata is None:
            table.add_row(Text(note or "no model loaded", style="dim"), Text(""))
            fit_columns(table)
            return
        for key, value in sorted(metadata.items()):
            flat = " ".join(value.split())
            if len(flat) > VALUE_WIDTH:
                flat = flat[: VALUE_WIDTH - 1] + "…"
            table.add_row(Text(key), Text(flat), key=key)
        fit_columns(table)
