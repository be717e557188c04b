"""The top line of every screen: the screens as tabs, and the balancer's connection state."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from paddler_tui.client.connection_state import ConnectionState
from paddler_tui.ui.key_bindings import shown_key
from paddler_tui.ui.navigation import TABS

STATUS_MARKS = {"connecting": "◌", "connected": "●", "disconnected": "○"}
# Narrower than this, the address is left out so the tabs stay readable.
WIDTH_FOR_ADDRESS = 110


class ConnectionBar(Horizontal):
    """Tabs on the left (click or press their key), connection state on the right.

    It reads the app's ``connection`` reactive and current mode, so it can be mounted on any
    screen, including screens that do not know about it.
    """

    DEFAULT_CSS = """
    ConnectionBar {
        split: top;
        height: 1;
        background: $panel;
        #connection-tabs {
            width: 1fr;
            padding: 0 0 0 1;
            text-wrap: nowrap;
            text-overflow: ellipsis;
        }
        #connection-state {
            width: auto;
            max-width: 60%;
            text-wrap: nowrap;
            text-overflow: ellipsis;
            padding: 0 1;
        }
        #connection-state.-connected { color: $success; }
        #connection-state.-connecting { color: $warning; }
        #connection-state.-disconnected { color: $error; text-style: bold; }
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self._state: ConnectionState | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="connection-tabs")
        yield Static(id="connection-state")

    def on_mount(self) -> None:
        self.watch(self.app, "connection", self._show_state)
        self.app.mode_change_signal.subscribe(self, self._show_tabs)
        self._show_tabs(self.app.current_mode)

    def _show_tabs(self, mode: str) -> None:
        parts: list[Content] = []
        for tab in TABS:
            key = shown_key(self.app, tab.binding_id, tab.key)
            style = "reverse bold" if tab.mode == mode else "dim"
            parts.append(
                Content.from_markup(
                    f"[@click=app.open('{tab.mode}')][{style}]$key[/{style}] $label[/]  ",
                    key=key,
                    label=tab.label,
                )
            )
        self.query_one("#connection-tabs", Static).update(Content("").join(parts))

    def on_resize(self) -> None:
        if self._state is not None:
            self._show_state(self._state)

    def _show_state(self, state: ConnectionState) -> None:
        self._state = state
        label = self.query_one("#connection-state", Static)
        summary = state.summary(with_address=self.size.width >= WIDTH_FOR_ADDRESS)
        label.update(f"{STATUS_MARKS[state.status]} {summary}")
        label.set_classes(f"-{state.status}")
        label.tooltip = state.detail or None
