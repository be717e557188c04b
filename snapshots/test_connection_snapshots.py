"""The connection screen after the embedded cluster failed to start: its cause and log tail."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot

from paddler_tui.ui.app import PaddlerTuiApp
from snapshots.screen_snapshots import SIZES, UNREACHABLE, SnapCompare
from tests.support.pilot import wait_until
from tests.ui.chat_app import tui_options
from tests.ui.failed_launch import FailedLaunch


async def start_failed(pilot: Pilot[None]) -> None:
    await wait_until(pilot, lambda: pilot.app.screen.has_class("-failed"))
    # The dialog widens for the log: wait until two renderings in a row agree.
    previous = ""
    for _ in range(40):
        await pilot.pause(0.05)
        current = pilot.app.export_screenshot()
        if current == previous:
            return
        previous = current


@pytest.mark.parametrize("size", SIZES)
def test_embedded_start_failed(
    snap_compare: SnapCompare, tmp_path: Path, size: tuple[int, int]
) -> None:
    options = tui_options(UNREACHABLE, UNREACHABLE, tmp_path, start_embedded=True)
    app = PaddlerTuiApp(options, embedded=FailedLaunch(UNREACHABLE))
    assert snap_compare(app, terminal_size=size, run_before=start_failed)
