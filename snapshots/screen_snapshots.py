"""What the screen snapshot tests share: fixed sizes, frozen clocks and time zone, a host app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen

from paddler_tui.client.balancer_services import BalancerServices
from tests.support.fake_balancer import FakeBalancer
from tests.ui.screen_host import ScreenHost

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
# Nothing listens on the discard port, and the refusal reads the same on every run.
UNREACHABLE = "127.0.0.1:9"


class SnapCompare(Protocol):
    """The ``snap_compare`` fixture of pytest-textual-snapshot, which ships no types."""

    def __call__(
        self,
        app: App[None],
        *,
        terminal_size: tuple[int, int] = ...,
        run_before: Callable[[Pilot[None]], Awaitable[None]] | None = None,
    ) -> bool: ...


def host(
    make_screen: Callable[[BalancerServices], Screen[None]],
    fake: FakeBalancer | None = None,
) -> ScreenHost:
    """The screen against ``fake``, or against an address where nothing answers."""
    return ScreenHost(
        make_screen,
        inference_addr=fake.inference_addr if fake else UNREACHABLE,
        management_addr=fake.management_addr if fake else UNREACHABLE,
    )


SETTLE_ROUNDS = 40


async def settle(pilot: Pilot[None]) -> None:
    """Quiet the app before the picture: no blinking cursors, no toasts, layout done.

    Tables size their columns on an idle pass after new rows, which a loaded machine can
    delay past any fixed pause; so wait until two renderings in a row are the same.
    """
    app = pilot.app
    assert isinstance(app, ScreenHost)
    app.freeze_cursors()
    app.clear_notifications()
    await pilot.pause(0.1)
    previous = app.export_screenshot()
    for _ in range(SETTLE_ROUNDS):
        await pilot.pause(0.05)
        current = app.export_screenshot()
        if current == previous:
            return
        previous = current
