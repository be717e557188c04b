"""The paddler-tui app: connect (or start the embedded default), then chat and the other screens.

Each screen is a mode with its own stack, built on first visit; the screens other than the chat
are imported only then, so starting the app does not pay for them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.theme import Theme

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.chat.conversation_store import ConversationStore, StoreError
from paddler_tui.client.connection_state import ConnectionState
from paddler_tui.client.errors import ClientError
from paddler_tui.ui.config import TuiConfig, save_theme
from paddler_tui.ui.embedded import EmbeddedCluster
from paddler_tui.ui.key_bindings import key_rows
from paddler_tui.ui.navigation import TABS
from paddler_tui.ui.screens.chat import ChatScreen
from paddler_tui.ui.screens.connection import RETRY_INTERVAL_S, ConnectionScreen
from paddler_tui.ui.screens.help import HelpScreen
from paddler_tui.ui.widgets.connection_bar import ConnectionBar

logger = logging.getLogger(__name__)

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 10.0


@dataclass(frozen=True)
class TuiOptions:
    inference_addr: str
    management_addr: str
    # No address was given: if nothing answers, start the embedded default.
    start_embedded: bool
    database_path: Path
    # Where a theme picked in the app is saved; None keeps it for this run only.
    config_path: Path | None
    config: TuiConfig
    api_key: str | None = field(default=None, repr=False)


class PaddlerTuiApp(App[None]):
    """| Key | Binding id | Action |
    |---|---|---|
    | f1 | app.help | Keys of this screen |
    | f2 | app.chat | Chat |
    | f3 | app.embeddings | Embeddings |
    | f4 | app.monitor | Monitor |
    | f5 | app.cluster | Cluster |
    """

    CSS_PATH = "app.tcss"
    TITLE = "paddler-tui"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", id="app.help"),
        *(
            Binding(tab.key, f"open('{tab.mode}')", tab.label, id=tab.binding_id, show=False)
            for tab in TABS
        ),
    ]

    connection: reactive[ConnectionState] = reactive(ConnectionState("connecting", ""))
    """The balancer as the agents stream last showed it."""

    def __init__(
        self,
        options: TuiOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        embedded: EmbeddedCluster | None = None,
        connect_retry_s: float = RETRY_INTERVAL_S,
    ) -> None:
        """``embedded`` replaces the ``serve --detach`` launcher (used with ``start_embedded``)."""
        super().__init__()
        self.options = options
        self.clock = clock
        self.services = BalancerServices(
            options.inference_addr, options.management_addr, api_key=options.api_key
        )
        self.embedded = (
            embedded
            or EmbeddedCluster(
                options.inference_addr, options.management_addr, api_key=options.api_key
            )
            if options.start_embedded
            else None
        )
        self._connect_retry_s = connect_retry_s
        self.store: ConversationStore | None = None
        self.chat: ChatScreen | None = None
        self._connected = False
        self.set_reactive(
            PaddlerTuiApp.connection, ConnectionState("connecting", options.inference_addr)
        )

    async def on_mount(self) -> None:
        config = self.options.config
        self.set_keymap(dict(config.keymap))
        if config.theme is not None:
            if config.theme in self.available_themes:
                self.theme = config.theme
            else:
                self.notify(f"Unknown theme {config.theme!r} in the config", severity="warning")
        self.theme_changed_signal.subscribe(self, self._save_theme)
        try:
            self.store = await ConversationStore.open(self.options.database_path)
        except StoreError as error:
            self.exit(return_code=2, message=f"paddler-tui: {error}")
            return
        await self.push_screen(
            ConnectionScreen(
                self.services, embedded=self.embedded, retry_interval=self._connect_retry_s
            ),
            self._on_connected,
        )

    async def on_unmount(self) -> None:
        if self.store is not None:
            await self.store.close()
        await self.services.aclose()

    def _save_theme(self, theme: Theme) -> None:
        path = self.options.config_path
        if path is not None:
            self.run_worker(asyncio.to_thread(save_theme, path, theme.name), group="config")

    # Connection.

    async def _on_connected(self, _: None) -> None:
        if not self._connected:
            self._connected = True
            for tab in TABS:
                self.add_mode(tab.mode, partial(self._make_screen, tab.mode))
            self._watch_cluster()
        await self.action_open("chat")

    def _make_screen(self, mode: str) -> Screen[None]:
        config = self.options.config
        if mode == "embeddings":
            from paddler_tui.ui.screens.embeddings import EmbeddingsScreen

            return EmbeddingsScreen(
                self.services, clock=self.clock, export_dir=config.resolved_export_dir()
            )
        if mode == "monitor":
            from paddler_tui.ui.screens.monitor import MonitorScreen

            return MonitorScreen(self.services, clock=self.clock)
        if mode == "cluster":
            from paddler_tui.ui.screens.cluster import ClusterScreen

            return ClusterScreen(self.services, clock=self.clock)
        assert self.store is not None
        self.chat = ChatScreen(
            self.services,
            self.store,
            defaults=config.chat,
            export_dir=config.resolved_export_dir(),
            clock=self.clock,
            cursor_blink=config.cursor_blink,
        )
        return self.chat

    @work(exclusive=True, group="cluster-watch")
    async def _watch_cluster(self) -> None:
        """Follow the agents stream; reconnect with backoff whenever it breaks."""
        addr = self.options.inference_addr
        embedded = self.embedded is not None and self.embedded.launched
        delay = RECONNECT_MIN_S
        while True:
            try:
                async for pool in self.services.management.agents_stream():
                    self.connection = ConnectionState.from_pool(pool, addr, embedded=embedded)
                    delay = RECONNECT_MIN_S
                problem = "the balancer ended the agents stream"
            except ClientError as error:
                problem = str(error)
            self.connection = ConnectionState(
                "disconnected", addr, detail=problem, embedded=embedded
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    # Actions.

    async def action_open(self, mode: str) -> None:
        """Show a screen; before the balancer answered there is only the connection screen."""
        if not self._connected:
            return
        await self.switch_mode(mode)
        if not self.screen.query(ConnectionBar):
            await self.screen.mount(ConnectionBar())

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(
            HelpScreen(
                key_rows(self, self.screen, self.options.config.keymap),
                config_file=self.options.config_path,
            )
        )

    async def action_quit(self) -> None:
        # A streaming answer is stopped (and stored as such) rather than lost.
        if self.chat is not None:
            await self.chat.stop_generation()
        self.exit()

    async def on_embeddings_screen_enable_embeddings_requested(self, _: Message) -> None:
        await self.action_open("cluster")
        await self.screen.run_action("enable_embeddings")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help: keys", "Every key of this screen", self.action_help)
        if self._connected:
            for tab in TABS:
                yield SystemCommand(
                    f"Go to {tab.label}",
                    f"Open the {tab.label.lower()} screen",
                    partial(self.action_open, tab.mode),
                )
        for row in key_rows(self, screen, self.options.config.keymap):
            # The app's own rows are the commands above; a repeated widget needs focus.
            if row.node is None or row.node is self:
                continue
            yield SystemCommand(
                row.description,
                f"{row.context} · {row.keys}",
                partial(self.run_action, row.action, row.node),
            )
        palette_actions: tuple[tuple[str, str, str], ...] = getattr(screen, "PALETTE_ACTIONS", ())
        for title, help_text, action in palette_actions:
            yield SystemCommand(title, help_text, partial(self.run_action, action, screen))
