"""Each agent's state, restarts, repacking, download, issues; while a new state applies, its
progress."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from paddler_tui.client.apply_tracker import AgentApplyState
from paddler_tui.ui.monitor_view import AgentRow, restarts_style
from paddler_tui.ui.table_fit import fit_columns
from paddler_tui.ui.widgets.live_table import LiveTable, plain_columns

# Restarts last: at 80 columns the issues stay in view, and the supervision note under the
# table names every agent that restarted.
COLUMNS = plain_columns(
    "agent", "apply", "state", "repack", "slots", "model", "download", "issues", "restarts"
)


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
                Text(row.state, style=_state_style(row.state, styles)),
                Text(row.repack, style=styles["warning"] if row.repack == "off" else ""),
                Text(row.slots),
                Text(row.model),
                Text(row.download),
                Text(row.issues, style=styles["error"]),
                Text(row.restarts, style=restarts_style(row.restarts, styles["warning"])),
                key=row.id,
            )
        fit_columns(self)


def _apply_style(state: AgentApplyState | None, styles: dict[str, str]) -> str:
    if state == "failed":
        return styles["error"]
    if state == "applying":
        return styles["warning"]
    return styles["success"] if state == "applied" else ""


def _state_style(state: str, styles: dict[str, str]) -> str:
    if state == "applied":
        return ""
    return styles["error"] if state == "gave up" else styles["warning"]
