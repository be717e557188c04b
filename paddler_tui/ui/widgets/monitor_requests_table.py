"""In-flight requests, each with a clock racing its timeout."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from paddler_tui.ui.monitor_view import RequestRow
from paddler_tui.ui.widgets.live_table import LiveTable, plain_columns

COLUMNS = plain_columns("request", "kind", "phase", "agent", "tokens", "clock")
SHORT_ID = 8


class MonitorRequestsTable(LiveTable):
    """The clock turns warning, then error colour, as it nears the timeout."""

    DEFAULT_CSS: ClassVar[str] = """
    MonitorRequestsTable {
        height: auto;
        max-height: 8;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(COLUMNS, id=id)

    def show(self, rows: list[RequestRow], *, styles: dict[str, str]) -> None:
        keyed = [
            (
                row.id,
                [
                    Text(row.id[:SHORT_ID]),
                    Text(row.kind),
                    Text(row.phase),
                    Text(row.agent),
                    Text(str(row.tokens), justify="right"),
                    Text(row.clock, style=styles.get(row.level, "")),
                ],
            )
            for row in rows
        ]
        self.show_keyed(keyed)
