"""Pick a text file of documents for the embeddings screen."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label


class EmbeddingFileScreen(ModalScreen[Path | None]):
    """Type a path or pick one in the tree; dismisses with the path, or ``None`` on Esc."""

    DEFAULT_CSS: ClassVar[str] = """
    EmbeddingFileScreen {
        align: center middle;
        #dialog {
            width: 80%;
            max-width: 100;
            height: 80%;
            border: round $primary;
            background: $surface;
            padding: 0 1;
        }
        #path { margin-bottom: 1; }
        DirectoryTree { height: 1fr; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="embeddings.file.cancel"),
    ]

    def __init__(self, start: Path) -> None:
        super().__init__()
        self._start = start

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("Load documents (one per line) — Enter opens, Esc cancels")
            yield Input(str(self._start) + "/", id="path")
            yield DirectoryTree(self._start)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        self.dismiss(event.path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        path = Path(event.value).expanduser()
        if path.is_file():
            self.dismiss(path)
        else:
            self.notify(f"{path} is not a file", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)
