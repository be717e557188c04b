"""A tiny app that shows one screen against a balancer, for Pilot and snapshot tests."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App
from textual.screen import Screen
from textual.widgets import Input, TextArea

from paddler_tui.client.balancer_services import BalancerServices


class ScreenHost(App[None]):
    """Pushes ``make_screen(services)`` on mount; tests see messages through ``message_hook``."""

    def __init__(
        self,
        make_screen: Callable[[BalancerServices], Screen[None]],
        *,
        inference_addr: str,
        management_addr: str,
    ) -> None:
        super().__init__()
        self._make_screen = make_screen
        self._addrs = (inference_addr, management_addr)
        self.services: BalancerServices | None = None

    async def on_mount(self) -> None:
        self.services = BalancerServices(*self._addrs)
        await self.push_screen(self._make_screen(self.services))

    async def on_unmount(self) -> None:
        if self.services is not None:
            await self.services.aclose()

    def freeze_cursors(self) -> None:
        """A blinking cursor would make screenshots differ from run to run."""
        for widget in self.screen.query("Input, TextArea"):
            assert isinstance(widget, Input | TextArea)
            widget.cursor_blink = False


def screen_text(app: App[None]) -> str:
    """What the terminal shows, as plain text lines."""
    update = app.screen._compositor.render_full_update()
    return "\n".join("".join(segment.text for segment in strip) for strip in update.strips)
