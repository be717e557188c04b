"""One line about the run: progress, timing, documents per second and the route used."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from paddler_tui.client.embeddings.request import method_label
from paddler_tui.client.embeddings.results import EmbeddingRun


class EmbeddingStatus(Static):
    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingStatus {
        height: 1;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("Ready: ctrl+r embeds the documents", id=id)

    def show_run(self, run: EmbeddingRun, now: float) -> None:
        total = len(run.params.input_batch)
        rate = run.documents_per_second(now)
        parts = [
            f"{run.state}: {len(run.rows)}/{total} embedded",
            f"{run.elapsed(now):.2f}s",
            f"{rate:.1f} docs/s" if rate is not None else "— docs/s",
            method_label(run.params.normalization_method),
        ]
        if run.transport is not None:
            parts.append(f"via {'inference socket' if run.transport == 'socket' else 'HTTP'}")
        if run.problems:
            parts.append(f"{len(run.problems)} problem{'s' if len(run.problems) > 1 else ''}")
        self.update(Text(" · ".join(parts)))
