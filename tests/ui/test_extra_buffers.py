"""Extra-buffers verdicts as the agents tables and notes show them."""

from __future__ import annotations

from paddler_tui.ui.extra_buffers import RepackNote, repack_label, repack_notes
from paddler_tui.ui.monitor_view import agent_row
from tests.support.monitor_script import PROBE_CRASHED as CRASHED
from tests.support.monitor_script import PROBE_PASSED as PASSED
from tests.support.monitor_script import REPACK_CRASHED, REPACK_ON, monitor_agent


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
