"""One line on the cluster screen: loaded, applying, applied, or what went wrong."""

from __future__ import annotations

from typing import ClassVar, Literal

from rich.text import Text
from textual.widgets import Static

StatusLevel = Literal["info", "busy", "ok", "error"]


class ClusterStatus(Static):
    DEFAULT_CSS: ClassVar[str] = """
    ClusterStatus {
        height: auto;
        max-height: 3;
        padding: 0 1;
        background: $boost;
        &.-busy { background: $warning 20%; }
        &.-ok { background: $success 20%; }
        &.-error { background: $error 25%; }
    }
    """

    def say(self, text: str, level: StatusLevel = "info") -> None:
        self.update(Text(text))
        for name in ("busy", "ok", "error"):
            self.set_class(level == name, f"-{name}")
