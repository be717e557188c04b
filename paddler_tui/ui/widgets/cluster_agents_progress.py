"""Each agent's state, download and issues; while a new state is applied, its progress."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import DataTable

from paddler_tui.ui.cluster_apply import AgentApplyState
from paddler_tui.ui.monitor_view import AgentRow
from paddler_tui.ui.table_fit import fit_columns

COLUMNS = ("agent", "apply", "state", "slots", "model", "download", "issues")


class ClusterAgentsProgress(DataTable[Text]):
    DEFAULT_CSS: ClassVar[str] = """
    ClusterAgentsProgress {
        height: auto;
        max-height: 8;
        border-top: solid $primary 30%;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.border_title = "agents"

    def on_mount(self) -> None:
        self._ensure_columns()

    def _ensure_columns(self) -> None:
        # Data can arrive before this table's own mount handler ran.
        if not self.columns:
            for column in COLUMNS:
                self.add_column(Text(column), key=column)

    def show(
        self,
        rows: list[tuple[AgentRow, AgentApplyState | None]],
        styles: dict[str, str],
    ) -> None:
        self._ensure_columns()
        self.clear()
        for row, apply_state in rows:
            self.add_row(
                Text(row.name),
                Text(apply_state or "", style=_apply_style(apply_state, styles)),
                Text(row.state, style="" if row.state == "applied" else styles["warning"]),
                Text(row.slots),
                Text(row.model),
                Text(row.download),
                Text(row.issues, style=styles["error"]),
                key=row.id,
            )
        fit_columns(self)


def _apply_style(state: AgentApplyState | None, styles: dict[str, str]) -> str:
    if state == "failed":
        return styles["error"]
    if state == "applying":
        return styles["warning"]
    return styles["success"] if state == "applied" else ""
