"""Extra-buffers verdicts: labels, notes, and following them from the monitor socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from paddler_tui.protocol.agent_socket import ExtraBuffers as Reported
from paddler_tui.ui.async_iteration import closing
from paddler_tui.ui.extra_buffers import (
    ExtraBuffers,
    RepackNote,
    repack_label,
    repack_notes,
    with_extra_buffers,
)
from paddler_tui.ui.monitor_extras import MonitorExtras, follow_monitor_extras
from paddler_tui.ui.monitor_view import agent_row
from tests.support.fake_balancer import FakeBalancer, FakeScript, agent_snapshot
from tests.ui.monitor_script import PROBE_CRASHED as CRASHED
from tests.ui.monitor_script import PROBE_PASSED as PASSED
from tests.ui.monitor_script import REPACK_CRASHED, REPACK_ON, monitor_agent


def test_labels_and_rows() -> None:
    assert [repack_label(value) for value in (True, False, None)] == ["on", "off", "—"]
    assert agent_row(monitor_agent("a1", "alpha", **REPACK_CRASHED)).repack == "off"
    assert agent_row(monitor_agent("a1", "alpha")).repack == "—"


def test_notes_group_agreeing_agents_and_put_off_first() -> None:
    agents = [
        monitor_agent("a1", "alpha", **REPACK_ON),
        monitor_agent("a2", "beta"),
        monitor_agent("a3", "gamma", **REPACK_CRASHED),
        monitor_agent("a4", None, **REPACK_ON),
    ]
    assert repack_notes(agents) == [
        RepackNote(f"gamma: repack off — {CRASHED}", warning=True),
        RepackNote(f"alpha, a4: repack on — {PASSED}", warning=False),
    ]
    assert repack_notes([monitor_agent("a2", "beta")]) == []


def test_many_agents_and_verdicts_stay_a_few_lines() -> None:
    same = [monitor_agent(f"a{index}", f"n{index}", **REPACK_ON) for index in range(5)]
    assert repack_notes(same) == [RepackNote(f"n0, n1, n2 +2: repack on — {PASSED}", warning=False)]
    varied = [
        monitor_agent(
            f"a{index}", f"n{index}", extra_buffers=False, extra_buffers_reason=str(index)
        )
        for index in range(5)
    ]
    notes = repack_notes(varied, limit=3)
    assert [note.text for note in notes] == [
        "n0: repack off — 0",
        "n1: repack off — 1",
        "+3 more agents",
    ]


def test_with_extra_buffers_fills_in_what_the_socket_knows() -> None:
    known = {"a1": ExtraBuffers(False, CRASHED)}
    filled = with_extra_buffers(monitor_agent("a1", "alpha"), known)
    assert (filled.extra_buffers, filled.extra_buffers_reason) == (False, CRASHED)
    untouched = monitor_agent("a2", "beta")
    assert with_extra_buffers(untouched, known) is untouched


async def _next(extras: AsyncIterator[MonitorExtras]) -> dict[str, ExtraBuffers]:
    return (await anext(extras)).extra_buffers


async def test_follow_yields_each_change_from_the_monitor_socket() -> None:
    script = FakeScript(
        live_monitor=True, extra_buffers={"a1": Reported(enabled=True, reason="ok")}
    )
    with FakeBalancer(script) as fake:
        extras = follow_monitor_extras(fake.management_addr, None, retry_s=0.1)
        async with closing(extras):
            assert await _next(extras) == {"a1": ExtraBuffers(True, "ok")}
            fake.set_extra_buffers("a2", Reported(enabled=False, reason="probe crashed"))
            assert await _next(extras) == {
                "a1": ExtraBuffers(True, "ok"),
                "a2": ExtraBuffers(False, "probe crashed"),
            }
            fake.set_agents([agent_snapshot("a1", "alpha")])
            assert await _next(extras) == {"a1": ExtraBuffers(True, "ok")}


async def test_follow_ends_against_a_balancer_without_the_socket() -> None:
    with FakeBalancer() as fake:
        extras = follow_monitor_extras(fake.management_addr, None, retry_s=0.1)
        assert [extra async for extra in extras] == []
