"""The monitor screen at 80x24 and 120x40: live, with prompt-cache hits, Paddler's SSE fallback,
disconnected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from textual.pilot import Pilot

from paddler_tui.client.balancer_services import BalancerServices
from paddler_tui.protocol.monitor import MonitorUpdate
from paddler_tui.ui.screens.monitor import MonitorScreen
from paddler_tui.ui.widgets.monitor_agents_table import MonitorAgentsTable
from paddler_tui.ui.widgets.monitor_status import MonitorStatus
from snapshots.screen_snapshots import SIZES, SnapCompare, host, settle
from tests.support.fake_balancer import FakeBalancer, FakeScript
from tests.support.monitor_script import busy_minute, cached_chats
from tests.support.pilot import wait_until

SCRIPT = busy_minute()
CACHED = cached_chats()


def monitor_screen(services: BalancerServices) -> MonitorScreen:
    # A clock that never moves: request ages are exactly what the last update says.
    return MonitorScreen(services, clock=lambda: 0.0)


def screen(pilot: Pilot[None]) -> MonitorScreen:
    assert isinstance(pilot.app.screen, MonitorScreen)
    return pilot.app.screen


def shown(script: list[MonitorUpdate]) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def last_update_shown(pilot: Pilot[None]) -> None:
        await wait_until(pilot, lambda: screen(pilot).latest == script[-1])
        await settle(pilot)

    return last_update_shown


async def fallback_shown(pilot: Pilot[None]) -> None:
    # Two streams: wait for the agents one, whichever came first.
    await wait_until(pilot, lambda: screen(pilot).query_one(MonitorAgentsTable).row_count == 2)
    await settle(pilot)


async def disconnected_shown(pilot: Pilot[None]) -> None:
    status = screen(pilot).query_one(MonitorStatus)
    await wait_until(pilot, lambda: status.connection.startswith("disconnected"))
    await settle(pilot)


@pytest.fixture
def live() -> Iterator[FakeBalancer]:
    with FakeBalancer(FakeScript(monitor=list(SCRIPT))) as fake:
        yield fake


@pytest.mark.parametrize("size", SIZES)
def test_live(snap_compare: SnapCompare, live: FakeBalancer, size: tuple[int, int]) -> None:
    app = host(monitor_screen, live)
    assert snap_compare(app, terminal_size=size, run_before=shown(SCRIPT))


@pytest.mark.parametrize("size", SIZES)
def test_prompt_cache_hits(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    with FakeBalancer(FakeScript(monitor=list(CACHED))) as fake:
        app = host(monitor_screen, fake)
        assert snap_compare(app, terminal_size=size, run_before=shown(CACHED))


def test_sse_fallback_against_paddler(snap_compare: SnapCompare) -> None:
    with FakeBalancer() as fake:
        app = host(monitor_screen, fake)
        assert snap_compare(app, terminal_size=(80, 24), run_before=fallback_shown)


@pytest.mark.parametrize("size", SIZES)
def test_disconnected(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    app = host(monitor_screen)
    assert snap_compare(app, terminal_size=size, run_before=disconnected_shown)
