"""Reaching the balancer: the connection screen, the embedded default, reconnecting."""

from __future__ import annotations

import asyncio
from pathlib import Path

from paddler_tui.ui.app import PaddlerTuiApp
from paddler_tui.ui.embedded import EmbeddedCluster, StartOutcome
from paddler_tui.ui.screens.connection import ConnectionScreen
from paddler_tui.ui.widgets.connection_bar import ConnectionBar
from paddler_tui.ui.widgets.connection_log_tail import ConnectionLogTail
from tests.support.fake_balancer import FakeBalancer, agent_snapshot
from tests.support.pilot import wait_until
from tests.ui.chat_app import answer, chat_screen, tui_options
from tests.ui.failed_launch import AGENT_LOG, CRASH, FailedLaunch
from tests.ui.screen_host import screen_text


class FakeLaunch(EmbeddedCluster):
    """``serve --detach`` stood in for by the fake balancer: fails ``failures`` times first,
    then serves and returns once ``ready`` is set."""

    def __init__(self, fake: FakeBalancer, *, failures: int = 0) -> None:
        super().__init__(fake.inference_addr, fake.management_addr)
        self.fake = fake
        self.failures = failures
        self.starts = 0
        self.ready = asyncio.Event()
        self.ready.set()

    async def start(self) -> StartOutcome:
        self.launched = True
        self.starts += 1
        if self.starts <= self.failures:
            return StartOutcome(False, "paddler-tui serve: the background services exited (1)")
        self.fake.start()
        await self.ready.wait()
        return StartOutcome(True, f"inference:  http://{self.fake.inference_addr}")


async def test_unreachable_address_explains_and_connects_once_it_answers(tmp_path: Path) -> None:
    # Bound but not serving: connections are refused until it starts.
    fake = FakeBalancer()
    try:
        options = tui_options(fake.inference_addr, fake.management_addr, tmp_path)
        app = PaddlerTuiApp(options, connect_retry_s=0.3)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, ConnectionScreen))
            await wait_until(pilot, lambda: app.screen.has_class("-failed"))
            text = screen_text(app)
            assert f"Cannot reach the balancer's management service at {fake.management_addr}" in (
                " ".join(text.split())
            )
            assert "Retry now" in text
            await pilot.press("r")
            await wait_until(pilot, lambda: app.screen.has_class("-failed"))
            assert app.is_running
            # Comes up later: the app connects without being told.
            fake.start()
            screen = await chat_screen(pilot)
            assert screen.query(ConnectionBar)
    finally:
        fake.close()


async def test_reconnects_after_the_balancer_restarts(tmp_path: Path) -> None:
    with FakeBalancer() as fake:
        options = tui_options(fake.inference_addr, fake.management_addr, tmp_path)
        app = PaddlerTuiApp(options)
        async with app.run_test() as pilot:
            screen = await chat_screen(pilot)
            await wait_until(pilot, lambda: app.connection.status == "connected")
            assert (app.connection.agents, app.connection.slots_total) == (2, 4)
            fake.stop()
            await wait_until(pilot, lambda: app.connection.status == "disconnected")
            bar = screen.query_one(ConnectionBar).query_one("#connection-state")
            assert bar.has_class("-disconnected")
            fake.start()
            await wait_until(pilot, lambda: app.connection.status == "connected", timeout=15)
            # The inference socket reconnects on demand too.
            stored = await answer(pilot, screen, "still there?")
            assert stored.content == "Hello from the fake."


async def test_starts_the_embedded_default_when_nothing_answers(tmp_path: Path) -> None:
    fake = FakeBalancer()
    try:
        options = tui_options(
            fake.inference_addr, fake.management_addr, tmp_path, start_embedded=True
        )
        launch = FakeLaunch(fake, failures=1)
        app = PaddlerTuiApp(options, embedded=launch)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.screen.has_class("-failed"))
            text = " ".join(screen_text(app).split())
            assert "The embedded cluster did not start." in text
            assert "background services exited (1)" in text
            await pilot.press("r")
            await chat_screen(pilot)
            assert launch.starts == 2
            await wait_until(pilot, lambda: app.connection.embedded)
            assert app.embedded is launch and launch.launched
    finally:
        fake.close()


async def test_running_services_are_used_not_started(tmp_path: Path) -> None:
    with FakeBalancer() as fake:
        options = tui_options(
            fake.inference_addr, fake.management_addr, tmp_path, start_embedded=True
        )
        launch = FakeLaunch(fake)
        app = PaddlerTuiApp(options, embedded=launch)
        async with app.run_test() as pilot:
            await chat_screen(pilot)
        assert launch.starts == 0
        assert not launch.launched


async def test_startup_progress_is_shown(tmp_path: Path) -> None:
    fake = FakeBalancer()
    fake.script.agents = [
        agent_snapshot(
            "a1",
            "agent-1",
            slots_total=0,
            desired_slots_total=4,
            download_total=8 * 2**20,
            download_current=3 * 2**20,
            download_filename="model.gguf",
        )
    ]
    try:
        options = tui_options(
            fake.inference_addr, fake.management_addr, tmp_path, start_embedded=True
        )
        launch = FakeLaunch(fake)
        launch.ready.clear()
        app = PaddlerTuiApp(options, embedded=launch)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(
                pilot, lambda: "Downloading model.gguf: 3 of 8 MiB" in screen_text(app)
            )
            assert "Nothing answers at the default address" in screen_text(app)
            fake.set_agents([agent_snapshot("a1", "agent-1", slots_total=4, slots_processing=0)])
            await wait_until(
                pilot, lambda: "Loading the model: 4 of 4 slots ready" in screen_text(app)
            )
            launch.ready.set()
            await chat_screen(pilot)
    finally:
        fake.close()


async def test_a_failed_embedded_start_shows_the_cause_and_the_log_tail(tmp_path: Path) -> None:
    options = tui_options("127.0.0.1:9", "127.0.0.1:9", tmp_path, start_embedded=True)
    launch = FailedLaunch("127.0.0.1:9")
    app = PaddlerTuiApp(options, embedded=launch)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_until(pilot, lambda: app.screen.has_class("-failed"))
        text = " ".join(screen_text(app).split())
        assert "The embedded cluster did not start: agent-1 killed by SIGSEGV" in text
        assert f"see {AGENT_LOG}" not in text  # it titles the log instead
        assert "Fatal Python error: Segmentation fault" in text
        log = app.screen.query_one(ConnectionLogTail)
        assert log.border_title == str(AGENT_LOG)
        assert log.lines == CRASH.log_tail
        # Retrying starts again and hides the old log until that attempt fails too.
        await pilot.press("r")
        await wait_until(pilot, lambda: launch.starts == 2)
        await wait_until(pilot, lambda: app.screen.has_class("-failed"))
        assert log.display and log.lines == CRASH.log_tail
