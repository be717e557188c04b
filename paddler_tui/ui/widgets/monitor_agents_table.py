"""Agents with their slot bars, prompt-cache hits, model, state, restarts, weight repacking,
download progress and issues."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from paddler_tui.ui.monitor_view import AgentRow, restarts_style
from paddler_tui.ui.widgets.live_table import LiveTable, plain_columns

# The cache next to the slots: how well routing and caching work is read with the load. Restarts
# last: at 80 columns the issues start in view, and the supervision note under the table names
# every agent that restarted.
COLUMNS = plain_columns(
    "agent", "slots", "cache", "model", "state", "repack", "download", "issues", "restarts"
)


class MonitorAgentsTable(LiveTable):
    """One row per agent, keyed by agent id; rows come and go with the agents (a local agent
    between two processes keeps a row of its own)."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorAgentsTable {
        height: auto;
        max-height: 10;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)

    def show(self, rows: list[AgentRow], *, warning: str, error: str) -> None:
        self.show_keyed([(row.id, _cells(row, warning=warning, error=error)) for row in rows])


def _cells(row: AgentRow, *, warning: str, error: str) -> list[Text]:
    busy_style = warning if row.total and row.busy >= row.total else ""
    state_style = "" if row.state == "applied" else error if row.state == "gave up" else warning
    return [
        Text(row.name),
        Text(row.slots, style=busy_style),
        Text(row.cache),
        Text(row.model),
        Text(row.state, style=state_style),
        Text(row.repack, style=warning if row.repack == "off" else ""),
        Text(row.download),
        Text(row.issues, style=error),
        Text(row.restarts, style=restarts_style(row.restarts, warning)),
    ]
