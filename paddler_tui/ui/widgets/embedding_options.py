"""How the embeddings are normalized: L2, None or RmsNorm with its epsilon."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Input, Label, Select

from paddler_tui.client.embeddings.request import (
    DEFAULT_EPSILON,
    NORMALIZATION_KINDS,
    NormalizationKind,
    normalization_method,
)
from paddler_tui.protocol.embedding import EmbeddingNormalizationMethod


class EmbeddingOptions(Horizontal):
    """A normalization choice; the epsilon field is enabled for RmsNorm only."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingOptions {
        height: 1;
        width: 1fr;
        Label { padding: 0 1 0 0; }
        #normalization { width: 14; }
        #epsilon-label { padding: 0 1 0 2; }
        #epsilon { width: 12; }
    }
    """

    def compose(self) -> ComposeResult:
        yield Label("normalization")
        yield Select[NormalizationKind](
            [(kind, kind) for kind in NORMALIZATION_KINDS],
            value="L2",
            allow_blank=False,
            compact=True,
            id="normalization",
        )
        yield Label("epsilon", id="epsilon-label")
        yield Input(DEFAULT_EPSILON, compact=True, disabled=True, id="epsilon")

    @property
    def kind(self) -> NormalizationKind:
        value = self.query_one("#normalization", Select).value
        return value if value in NORMALIZATION_KINDS else "L2"

    def method(self) -> EmbeddingNormalizationMethod:
        """Raise :class:`~paddler_tui.client.embeddings.request.EmbeddingInputError` if the epsilon
        is wrong."""
        return normalization_method(self.kind, self.query_one("#epsilon", Input).value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.query_one("#epsilon", Input).disabled = self.kind != "RmsNorm"
