"""serve's supervision of its local agents in the TUI: labels, rows, notes, the start dialog,
and the cluster screen following it from the monitor socket (issue #13)."""

from __future__ import annotations

from pathlib import Path

from paddler_tui.protocol.monitor import MonitorLocalAgent, decode_monitor_update
from paddler_tui.ui.app import PaddlerTuiApp
from paddler_tui.ui.monitor_view import agent_row, local_agent_row
from paddler_tui.ui.screens.cluster import ClusterScreen
from paddler_tui.ui.supervision import (
    SupervisionNote,
    restarts_label,
    startup_detail,
    supervision_notes,
    unregistered,
)
from paddler_tui.ui.widgets.agents_supervision_note import AgentsSupervisionNote
from paddler_tui.ui.widgets.cluster_agents_progress import ClusterAgentsProgress
from tests.support.fake_balancer import FakeBalancer, FakeScript, agent_snapshot
from tests.support.monitor_script import monitor_agent
from tests.support.pilot import wait_until
from tests.ui.chat_app import chat_screen, tui_options
from tests.ui.screen_host import ScreenHost, screen_text
from tests.ui.test_connection import FakeLaunch

RUNNING = MonitorLocalAgent(name="agent-1", pid=11, log_file="/logs/agent-1.log")
BACK = MonitorLocalAgent(
    name="agent-2", pid=12, restarts=2, last_exit="killed by SIGKILL", log_file="/logs/agent-2.log"
)
WAITING = MonitorLocalAgent(
    name="agent-3",
    state="restarting",
    restarts=1,
    last_exit="killed by SIGSEGV",
    next_restart_in_ms=3500,
    log_file="/logs/agent-3.log",
)
DOWN = MonitorLocalAgent(
    name="agent-4",
    state="gave_up",
    restarts=4,
    last_exit="exited with status 1",
    log_file="/logs/agent-4.log",
)


def test_an_older_or_foreign_balancer_says_nothing_of_local_agents() -> None:
    frame = (
        '{"server_time": 1, "agents": [], "buffer": {"buffered": 0, "max_buffered": 30, '
        '"timeout_ms": 10000}, "requests": [], "timeouts": {"buffered_request_timeout_ms": 1, '
        '"inference_item_timeout_ms": 1}, "events": []}'
    )
    assert decode_monitor_update(frame).local_agents == []
    # Only a name is required of a local agent; new keys are ignored.
    assert decode_monitor_update(
        frame[:-1] + ', "local_agents": [{"name": "agent-1", "shoe_size": 44}]}'
    ).local_agents == [MonitorLocalAgent(name="agent-1")]


def test_rows_show_restarts_and_agents_between_two_processes() -> None:
    assert restarts_label(None) == "—"
    assert agent_row(monitor_agent("a1", "agent-1")).restarts == "—"
    assert agent_row(monitor_agent("a2", "agent-2"), BACK).restarts == "2"
    rows = [local_agent_row(local) for local in (WAITING, DOWN, RUNNING)]
    assert [(row.id, row.name, row.state, row.restarts) for row in rows] == [
        ("local:agent-3", "agent-3", "restarting", "1"),
        ("local:agent-4", "agent-4", "gave up", "4"),
        ("local:agent-1", "agent-1", "starting", "0"),  # running, not registered yet
    ]
    assert unregistered([RUNNING, BACK, WAITING], ["agent-2", None]) == [RUNNING, WAITING]


def test_notes_put_a_crash_loop_first_and_skip_agents_that_never_exited() -> None:
    assert supervision_notes([RUNNING]) == []
    assert supervision_notes([RUNNING, BACK, WAITING, DOWN]) == [
        SupervisionNote(
            "agent-4: exited with status 1 · crash loop, not restarted (4 restarts) · "
            "/logs/agent-4.log",
            "error",
        ),
        SupervisionNote(
            "agent-3: killed by SIGSEGV · restarting in 3.5s (1 restart so far)", "warning"
        ),
        SupervisionNote("agent-2: 2 restarts · last exit: killed by SIGKILL", "ok"),
    ]
    many = [BACK.model_copy(update={"name": f"agent-{n}"}) for n in range(5)]
    notes = supervision_notes(many, limit=3)
    assert [note.text for note in notes][-1] == "+3 more agents"
    assert len(notes) == 3


def test_the_start_dialog_line() -> None:
    assert startup_detail([RUNNING]) == ""
    assert startup_detail([RUNNING, WAITING, BACK, DOWN]).splitlines() == [
        "agent-3 killed by SIGSEGV: restarting in 3.5s (1 restart so far)",
        "agent-2 killed by SIGKILL: restarted (2 restarts so far)",
        "agent-4 exited with status 1: not restarted (crash loop) (4 restarts so far)",
    ]


def cells(app: ScreenHost) -> dict[str, tuple[str, str]]:
    table = app.screen.query_one(ClusterAgentsProgress)
    return {
        key.value or "": (str(table.get_cell(key, "state")), str(table.get_cell(key, "restarts")))
        for key in table.rows
    }


def note(app: ScreenHost) -> str:
    widget = app.screen.query_one(AgentsSupervisionNote)
    return str(widget.render()) if widget.display else ""


async def test_the_cluster_screen_follows_supervision_from_the_monitor_socket() -> None:
    script = FakeScript(
        agents=[agent_snapshot("a1", "agent-1"), agent_snapshot("a2", "agent-2")],
        live_monitor=True,
        local_agents=[RUNNING, BACK],
    )
    with FakeBalancer(script) as fake:
        app = ScreenHost(
            lambda services: ClusterScreen(services, retry_s=0.1),
            inference_addr=fake.inference_addr,
            management_addr=fake.management_addr,
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(
                pilot, lambda: cells(app) == {"a1": ("applied", "0"), "a2": ("applied", "2")}
            )
            assert note(app) == "agent-2: 2 restarts · last exit: killed by SIGKILL"
            # agent-2 crashes again: it leaves the balancer and waits out its backoff.
            fake.set_agents([agent_snapshot("a1", "agent-1")])
            fake.set_local_agents([RUNNING, WAITING.model_copy(update={"name": "agent-2"})])
            await wait_until(
                pilot,
                lambda: (
                    cells(app) == {"a1": ("applied", "0"), "local:agent-2": ("restarting", "1")}
                ),
            )
            assert note(app) == "agent-2: killed by SIGSEGV · restarting in 3.5s (1 restart so far)"


async def test_against_paddler_restarts_are_unknown_and_no_note_shows() -> None:
    with FakeBalancer() as fake:  # no monitor socket
        app = ScreenHost(
            lambda services: ClusterScreen(services, retry_s=0.1),
            inference_addr=fake.inference_addr,
            management_addr=fake.management_addr,
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: len(cells(app)) == 2)
            assert {restarts for _, restarts in cells(app).values()} == {"—"}
            assert note(app) == ""


async def test_the_start_dialog_says_when_an_agent_is_restarted(tmp_path: Path) -> None:
    fake = FakeBalancer(FakeScript(agents=[], live_monitor=True, local_agents=[WAITING]))
    try:
        options = tui_options(
            fake.inference_addr, fake.management_addr, tmp_path, start_embedded=True
        )
        launch = FakeLaunch(fake)
        launch.ready.clear()
        app = PaddlerTuiApp(options, embedded=launch)
        async with app.run_test(size=(100, 30)) as pilot:
            restarting = "agent-3 killed by SIGSEGV: restarting in 3.5s (1 restart so far)"
            await wait_until(pilot, lambda: restarting in screen_text(app))
            await wait_until(pilot, lambda: "Waiting for the agent to connect…" in screen_text(app))
            fake.set_local_agents([WAITING.model_copy(update={"state": "running", "pid": 13})])
            await wait_until(
                pilot, lambda: "agent-3 killed by SIGSEGV: restarted (1 restart so far)"
                in screen_text(app)
            )  # fmt: skip
            launch.ready.set()
            await chat_screen(pilot)
    finally:
        fake.close()
