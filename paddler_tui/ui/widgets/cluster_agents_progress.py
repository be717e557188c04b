"""Each agent's state, repacking, download, issues; while a new state applies, its progress."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from paddler_tui.ui.cluster_apply import AgentApplyState
from paddler_tui.ui.monitor_view import AgentRow
from paddler_tui.ui.table_fit import fit_columns
from paddler_tui.ui.widgets.live_table import LiveTable, plain_columns

COLUMNS = plain_columns("agent", "apply", "state", "repack", "slots", "model", "download", "issues")


class ClusterAgentsProgress(LiveTable):
    DEFAULT_CSS: ClassVar[str] = """
    ClusterAgentsProgress {
        height: auto;
        max-height: 8;
        border-top: solid $primary 30%;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)
        self.border_title = "agents"

    def show(
        self,
        rows: list[tuple[AgentRow, AgentApplyState | None]],
        styles: dict[str, str],
    ) -> None:
        self.ensure_columns()
        self.clear()
        for row, apply_state in rows:
            self.add_row(
                Text(row.name),
                Text(apply_state or "", style=_apply_style(apply_state, styles)),
                Text(row.state, style="" if row.state == "applied" else styles["warning"]),
                Text(row.repack, style=styles["warning"] if row.repack == "off" else ""),
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
