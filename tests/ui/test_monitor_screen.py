"""The monitor screen driven by Pilot against the fake balancer."""

from __future__ import annotations

import asyncio

from paddler_tui.protocol.agent_socket import PromptCacheRam
from paddler_tui.ui.screens.monitor import MonitorScreen
from paddler_tui.ui.widgets.agents_repack_note import AgentsRepackNote
from paddler_tui.ui.widgets.agents_supervision_note import AgentsSupervisionNote
from paddler_tui.ui.widgets.monitor_agents_table import MonitorAgentsTable
from paddler_tui.ui.widgets.monitor_requests_table import MonitorRequestsTable
from paddler_tui.ui.widgets.monitor_status import MonitorStatus
from tests.support.fake_balancer import AgentTraffic, FakeBalancer, FakeScript, agent_snapshot
from tests.support.monitor_script import busy_minute, monitor_agent, request, update
from tests.support.pilot import wait_until
from tests.ui.screen_host import ScreenHost, screen_text


def host(fake: FakeBalancer) -> ScreenHost:
    return ScreenHost(
        lambda services: MonitorScreen(services, retry_s=0.1),
        inference_addr=fake.inference_addr,
        management_addr=fake.management_addr,
    )


def screen(app: ScreenHost) -> MonitorScreen:
    assert isinstance(app.screen, MonitorScreen)
    return app.screen


async def test_it_follows_the_monitor_socket() -> None:
    script = busy_minute()
    with FakeBalancer(FakeScript(monitor=script[:1])) as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: screen(app).latest is not None)
            status = screen(app).query_one(MonitorStatus)
            assert (status.connected, status.connection) == (True, "live via monitor socket")
            fake.push_monitor_update(script[-1])
            await wait_until(pilot, lambda: screen(app).latest == script[-1])
            await pilot.pause()
            agents = screen(app).query_one(MonitorAgentsTable)
            # beta, serve's local agent, has a row while it waits to restart.
            assert [key.value for key in agents.rows] == ["a1", "a3", "local:beta"]
            cells = {
                key.value: (
                    str(agents.get_cell(key, "state")),
                    str(agents.get_cell(key, "restarts")),
                )
                for key in agents.rows
            }
            assert cells == {
                "a1": ("applied", "0"),
                "a3": ("retrying", "—"),  # not a local agent: no one restarts it
                "local:beta": ("restarting", "1"),
            }
            supervision = str(screen(app).query_one(AgentsSupervisionNote).render())
            assert supervision == "beta: killed by SIGSEGV · restarting in 2.0s (1 restart so far)"
            requests = screen(app).query_one(MonitorRequestsTable)
            assert requests.row_count == 4
            text = screen_text(app)
            assert "502 agent lost" in text
            assert "beta left" in text
            assert "buffered 3/30" in text
            assert [str(agents.get_cell(key, "repack")) for key in ("a1", "a3")] == ["off", "on"]
            note = str(screen(app).query_one(AgentsRepackNote).render())
            assert note.startswith("alpha: repack off — auto: the extra-buffers probe killed by")
            assert "gamma: repack on" in note


async def test_pause_freezes_the_display_and_resume_catches_up() -> None:
    agents = [monitor_agent("a1", "alpha", slots_busy=1)]
    with FakeBalancer(FakeScript(monitor=[update(0, agents=agents)])) as fake:
        app = host(fake)
        async with app.run_test() as pilot:
            await wait_until(pilot, lambda: screen(app).latest is not None)
            await pilot.press("p")
            running = request("r1", phase="running", agent="alpha", started=0, last=0, tokens=1)
            fake.push_monitor_update(update(1, agents=agents, requests=[running]))
            await wait_until(
                pilot,
                lambda: (latest := screen(app).latest) is not None and len(latest.requests) == 1,
            )
            table = screen(app).query_one(MonitorRequestsTable)
            assert table.row_count == 0
            assert "PAUSED" in screen_text(app)
            await pilot.press("p")
            await pilot.pause()
            assert table.row_count == 1
            await pilot.press("c")


async def test_without_the_monitor_socket_it_uses_the_sse_streams() -> None:
    with FakeBalancer() as fake:
        app = host(fake)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_until(pilot, lambda: screen(app).latest is not None)
            fake.set_agents([agent_snapshot("a1", "alpha", slots_processing=2)])
            await wait_until(pilot, lambda: "beta left" in screen_text(app))
            assert "live via SSE streams" in screen_text(app)
            assert not screen(app).query_one(AgentsRepackNote).display  # Paddler has no verdicts
            assert "██ 2/2" in screen_text(app)
            fake.set_buffered(2)
            await wait_until(pilot, lambda: "buffered 2" in screen_text(app))


async def test_disconnected_then_back_without_user_action() -> None:
    with FakeBalancer(FakeScript(monitor=busy_minute()[:1])) as fake:
        app = host(fake)
        async with app.run_test(size=(100, 30)) as pilot:
            status = screen(app).query_one(MonitorStatus)
            await wait_until(pilot, lambda: status.connected)
            await asyncio.to_thread(fake.stop)
            await wait_until(pilot, lambda: not status.connected)
            assert "disconnected" in screen_text(app)
            await asyncio.to_thread(fake.start)
            await wait_until(pilot, lambda: status.connected)
            await pilot.pause(0.2)
            assert screen_text(app).count("connected via monitor socket") == 2
            # The same history arrives again on the new connection; it is shown once.
            assert screen_text(app).count("alpha joined") == 1


async def test_the_headline_adds_what_the_agents_prompt_caches_keep_in_ram() -> None:
    kept = PromptCacheRam(states=3, bytes=13 * 2**20, budget_bytes=8192 * 2**20)
    script = FakeScript(live_monitor=True, traffic={"a1": AgentTraffic(prompt_cache_ram=kept)})
    with FakeBalancer(script) as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            status = screen(app).query_one(MonitorStatus)
            await wait_until(pilot, lambda: status.summary != "")
            assert status.summary.endswith(" · 13.0 MiB kept in RAM")


async def test_the_headline_names_no_ram_while_no_agent_reports_a_cache() -> None:
    with FakeBalancer(FakeScript(live_monitor=True)) as fake:
        app = host(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            status = screen(app).query_one(MonitorStatus)
            await wait_until(pilot, lambda: status.summary != "")
            assert "RAM" not in status.summary
