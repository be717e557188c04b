"""The live monitor: agents and slots, the buffer, in-flight requests and their timeouts.

Fed by :func:`~paddler_tui.client.monitoring.feed.monitor_feed`: the monitor socket (paddler-tui
extension) or, against Paddler, its agents and buffered-requests SSE streams. The feed reconnects
by itself; this screen only shows what it says.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.client.monitoring.feed import (
    RETRY_S,
    FeedConnected,
    FeedDisconnected,
    FeedEvent,
    FeedUpdate,
    monitor_feed,
)
from paddler_tui.client.monitoring.history import MonitorHistory, slot_totals
from paddler_tui.client.monitoring.prompt_cache import (
    MIB,
    cluster_prompt_tokens,
    cluster_ram_bytes,
    share_label,
)
from paddler_tui.protocol.monitor import MonitorUpdate
from paddler_tui.ui.extra_buffers import repack_notes
from paddler_tui.ui.monitor_view import (
    EventLine,
    SeenEvents,
    agent_row,
    buffer_gauge,
    event_line,
    local_agent_row,
    request_row,
)
from paddler_tui.ui.supervision import by_name, supervision_notes, unregistered
from paddler_tui.ui.widgets.agents_repack_note import AgentsRepackNote
from paddler_tui.ui.widgets.agents_supervision_note import AgentsSupervisionNote
from paddler_tui.ui.widgets.monitor_agents_table import MonitorAgentsTable
from paddler_tui.ui.widgets.monitor_buffer_gauge import MonitorBufferGauge
from paddler_tui.ui.widgets.monitor_event_log import MonitorEventLog
from paddler_tui.ui.widgets.monitor_history_chart import MonitorHistoryChart
from paddler_tui.ui.widgets.monitor_requests_table import MonitorRequestsTable
from paddler_tui.ui.widgets.monitor_status import MonitorStatus

CLOCK_TICK_S = 0.25


class MonitorScreen(Screen[None]):
    """Everything the balancer is doing, live.

    | Key | Action | Binding id |
    | --- | --- | --- |
    | p | pause or resume the display (data keeps being collected) | ``monitor.pause`` |
    | c | clear the event log | ``monitor.clear_log`` |
    """

    DEFAULT_CSS: ClassVar[str] = """
    MonitorScreen {
        layout: vertical;
        #agents { max-height: 40%; }
        #requests { max-height: 30%; }
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "toggle_pause", "Pause", id="monitor.pause"),
        Binding("c", "clear_log", "Clear log", id="monitor.clear_log"),
    ]

    paused: reactive[bool] = reactive(False)
    """While paused the display stands still; updates are still collected."""

    def __init__(
        self,
        services: BalancerServices,
        *,
        clock: Callable[[], float] = time.monotonic,
        retry_s: float = RETRY_S,
    ) -> None:
        super().__init__()
        self.services = services
        self._clock = clock
        self._retry_s = retry_s
        self.history = MonitorHistory()
        self.latest: MonitorUpdate | None = None
        self._received_at = 0.0
        self._pending_events: list[EventLine] = []
        self._seen = SeenEvents()
        self._was_connected: bool | None = None

    def compose(self) -> ComposeResult:
        yield MonitorStatus(id="status")
        yield MonitorAgentsTable(id="agents")
        yield AgentsSupervisionNote(id="supervision")
        yield AgentsRepackNote(id="repack")
        yield MonitorBufferGauge(id="buffer", classes="-unknown-limit")
        yield MonitorHistoryChart(id="history")
        yield MonitorRequestsTable(id="requests")
        yield MonitorEventLog(id="events")
        yield Footer()

    def on_mount(self) -> None:
        # After the first refresh every child is mounted and running, so none is handed data
        # before its own mount handler (a table would miss its first re-measure).
        self.call_after_refresh(self._start)

    def _start(self) -> None:
        self._follow()
        self.set_interval(CLOCK_TICK_S, self._tick_clocks)

    # Actions.

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def action_clear_log(self) -> None:
        self.query_one(MonitorEventLog).clear()

    def watch_paused(self, paused: bool) -> None:
        self.query_one(MonitorStatus).paused = paused
        if not paused:
            self._refresh_view()

    # The feed.

    @work(exclusive=True, group="monitor-feed")
    async def _follow(self) -> None:
        feed = monitor_feed(
            self.services.management, self.services.management_addr, retry_s=self._retry_s
        )
        async with closing(feed):
            async for event in feed:
                self._on_feed(event)

    def _on_feed(self, event: FeedEvent) -> None:
        status = self.query_one(MonitorStatus)
        log = self.query_one(MonitorEventLog)
        if isinstance(event, FeedConnected):
            status.connected = True
            status.connection = f"live via {event.source}" + (
                " (no per-request data)" if event.source == "SSE streams" else ""
            )
            log.note(f"connected via {event.source}")
            self._was_connected = True
        elif isinstance(event, FeedDisconnected):
            status.connected = False
            status.connection = f"disconnected, retrying every {self._retry_s:g}s: {event.reason}"
            if self._was_connected is not False:
                log.note(f"disconnected: {event.reason}", self._styles()["error"])
            self._was_connected = False
        else:
            self._take(event)

    def _take(self, event: FeedUpdate) -> None:
        update = event.update
        self.latest, self._received_at = update, self._clock()
        self.history.observe(update)
        if update.events_dropped:
            self._pending_events.append(
                EventLine("", "", "missed", f"{update.events_dropped} events", "warning")
            )
        self._pending_events.extend(event_line(item) for item in self._seen.fresh(update.events))
        if not self.paused:
            self._refresh_view()

    # Rendering.

    def _styles(self) -> dict[str, str]:
        variables = self.app.theme_variables
        return {
            "ok": "",
            "warning": variables.get("warning", "yellow"),
            "error": variables.get("error", "red"),
        }

    def _server_now(self, update: MonitorUpdate) -> int:
        return update.server_time + int((self._clock() - self._received_at) * 1000)

    def _refresh_view(self) -> None:
        update = self.latest
        if update is None:
            return
        styles = self._styles()
        local = by_name(update.local_agents)
        down = unregistered(update.local_agents, (agent.name for agent in update.agents))
        self.query_one(MonitorAgentsTable).show(
            [agent_row(agent, local.get(agent.name or "")) for agent in update.agents]
            + [local_agent_row(agent) for agent in down],
            warning=styles["warning"],
            error=styles["error"],
        )
        self.query_one(AgentsSupervisionNote).show(supervision_notes(update.local_agents), styles)
        self.query_one(AgentsRepackNote).show(
            repack_notes(update.agents), warning=styles["warning"]
        )
        self.query_one(MonitorBufferGauge).show(buffer_gauge(update))
        self.query_one(MonitorHistoryChart).show(self.history)
        self._render_requests(update)
        log = self.query_one(MonitorEventLog)
        for line in self._pending_events:
            log.add(line, styles)
        self._pending_events.clear()
        busy, total = slot_totals(update)
        prompt_tokens = cluster_prompt_tokens(update)
        ram_kept = cluster_ram_bytes(update)
        self.query_one(MonitorStatus).summary = (
            f"{len(update.agents)} agents · slots {busy}/{total} busy · "
            f"{self.history.latest_tokens_per_second():.0f} tok/s"
            + (f" · {share_label(prompt_tokens)} cached" if prompt_tokens.prompt else "")
            + (f" · {ram_kept / MIB:.1f} MiB kept in RAM" if ram_kept else "")
        )

    def _render_requests(self, update: MonitorUpdate) -> None:
        now = self._server_now(update)
        self.query_one(MonitorRequestsTable).show(
            [request_row(request, update, now) for request in update.requests],
            styles=self._styles(),
        )

    def _tick_clocks(self) -> None:
        # Clocks keep running between updates, which come only on change or once a second.
        if self.latest is not None and not self.paused:
            self._render_requests(self.latest)
