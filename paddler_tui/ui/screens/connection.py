"""Until the balancer answers: probe it, start the embedded default, or say what is wrong."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Footer, ProgressBar, Static

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.errors import ClientError
from paddler_tui.client.monitoring.extras import follow_monitor_extras
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.ui.embedded import EmbeddedCluster, StartOutcome
from paddler_tui.ui.supervision import startup_detail
from paddler_tui.ui.widgets.connection_log_tail import ConnectionLogTail

RETRY_INTERVAL_S = 5.0
STARTUP_POLL_S = 0.5


class ConnectionScreen(Screen[None]):
    """Dismissed once the management service answers.

    With an :class:`EmbeddedCluster` (no address was given), nothing answering means starting
    it, with its progress shown; otherwise the screen explains and retries by itself.

    | Key | Binding id | Action |
    |---|---|---|
    | r | connection.retry | Retry now |
    | q | connection.quit | Quit |
    """

    # Not the log tail before it, which takes focus only to be scrolled by keys.
    AUTO_FOCUS = "#connection-retry"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "retry", "Retry now", id="connection.retry"),
        Binding("q", "app.quit", "Quit", id="connection.quit"),
    ]

    def __init__(
        self,
        services: BalancerServices,
        *,
        embedded: EmbeddedCluster | None,
        retry_interval: float = RETRY_INTERVAL_S,
    ) -> None:
        super().__init__()
        self.services = services
        self.embedded = embedded
        self._retry_interval = retry_interval
        self._retry_now = asyncio.Event()
        self._embedded_failed = False
        # The detail line while the embedded cluster starts: its progress, and its restarts.
        self._startup = ""
        self._restarts = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="connection-panel"):
            yield Static("paddler-tui", id="connection-title")
            yield Static(id="connection-message")
            yield ProgressBar(id="connection-progress", show_eta=False)
            yield Static(id="connection-detail")
            yield ConnectionLogTail(id="connection-log")
            with Horizontal(id="connection-buttons"):
                yield Button("Retry now", id="connection-retry", variant="primary")
                yield Button("Quit", id="connection-quit")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#connection-progress").display = False
        self.query_one("#connection-buttons").display = False
        self._connect()

    def _say(
        self,
        message: str,
        detail: str = "",
        *,
        failed: bool = False,
        log: tuple[Path | None, Sequence[str]] = (None, ()),
    ) -> None:
        self.query_one("#connection-message", Static).update(message)
        self.query_one("#connection-detail", Static).update(detail)
        self.query_one(ConnectionLogTail).show(*log)
        self.set_class(bool(log[1]), "-log")
        self.query_one("#connection-buttons").display = failed
        self.set_class(failed, "-failed")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Retrying means something only once an attempt failed.
        return self.has_class("-failed") if action == "retry" else True

    @work(exclusive=True, group="connect")
    async def _connect(self) -> None:
        management = self.services.management_addr
        while True:
            self._say(f"Connecting to the balancer at {management}…")
            try:
                await self.services.management.health()
            except ClientError as error:
                problem = str(error)
            else:
                self.dismiss(None)
                return
            if self.embedded is not None and not self._embedded_failed:
                if await self._start_embedded():
                    continue
                self._retry_now.clear()
                await self._retry_now.wait()
                self._embedded_failed = False
                continue
            self._say(
                f"Cannot reach the balancer's management service at {management}.",
                f"{problem}\n\nStart one there (paddler-tui balancer, or paddler-tui serve), or "
                "pass --management-addr and --inference-addr for another one. It retries "
                f"every {self._retry_interval:g} seconds.",
                failed=True,
            )
            self._retry_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._retry_now.wait(), self._retry_interval)

    async def _start_embedded(self) -> bool:
        """Start the embedded default and show its progress; False (and why) if it failed."""
        assert self.embedded is not None
        self._say(
            "Nothing answers at the default address, so paddler-tui starts a local balancer and "
            "an agent with the default model (SmolLM2-135M-Instruct).",
            "Starting the balancer…",
        )
        progress = self.query_one("#connection-progress", ProgressBar)
        progress.display = True
        watcher = asyncio.create_task(self._watch_startup())
        try:
            outcome = await self.embedded.start()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            progress.display = False
        if not outcome.ok:
            self._embedded_failed = True
            self._say_start_failed(outcome)
        return outcome.ok

    def _say_start_failed(self, outcome: StartOutcome) -> None:
        hint = "`paddler-tui serve` in another terminal shows the same start with its log."
        failure = outcome.failure
        if failure is None:
            self._say(
                "The embedded cluster did not start.", f"{outcome.message}\n\n{hint}", failed=True
            )
            return
        self._say(
            f"The embedded cluster did not start: {failure.headline}",
            hint,
            failed=True,
            log=(failure.log_path, failure.log_tail),
        )

    async def _watch_startup(self) -> None:
        self._startup, self._restarts = "", ""
        supervision = asyncio.create_task(self._watch_supervision())
        try:
            while True:
                with contextlib.suppress(ClientError):
                    async for pool in self.services.management.agents_stream():
                        self._show_startup(pool)
                await asyncio.sleep(STARTUP_POLL_S)
        finally:
            supervision.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervision

    async def _watch_supervision(self) -> None:
        """Agents that exit on the way up are restarted by ``serve``; its monitor socket says
        which, why, and when the next attempt comes."""
        services = self.services
        extras = follow_monitor_extras(
            services.management_addr, services.api_key, retry_s=STARTUP_POLL_S
        )
        async with closing(extras):
            async for current in extras:
                self._restarts = startup_detail(current.local_agents)
                self._show_detail()

    def _show_startup(self, pool: AgentControllerPoolSnapshot) -> None:
        progress = self.query_one("#connection-progress", ProgressBar)
        downloading = [agent for agent in pool.agents if agent.download_total > 0]
        if downloading:
            total = sum(agent.download_total for agent in downloading)
            current = sum(agent.download_current for agent in downloading)
            name = downloading[0].download_filename or "the model"
            progress.update(total=total, progress=current)
            self._startup = f"Downloading {name}: {current / 2**20:.0f} of {total / 2**20:.0f} MiB"
        else:
            wanted = sum(agent.desired_slots_total for agent in pool.agents)
            ready = sum(agent.slots_total for agent in pool.agents)
            progress.update(total=wanted or None, progress=ready)
            if not pool.agents:
                self._startup = "Waiting for the agent to connect…"
            else:
                self._startup = f"Loading the model: {ready} of {wanted} slots ready"
        self._show_detail()

    def _show_detail(self) -> None:
        detail = "\n".join(line for line in (self._startup, self._restarts) if line)
        self.query_one("#connection-detail", Static).update(detail)

    @on(Button.Pressed, "#connection-retry")
    def action_retry(self) -> None:
        self._retry_now.set()

    @on(Button.Pressed, "#connection-quit")
    async def _quit(self) -> None:
        await self.app.run_action("app.quit")
