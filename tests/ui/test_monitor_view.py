from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from paddler_tui.client.monitoring.history import slot_totals
from paddler_tui.protocol.agent_issue import ModelFileDoesNotExist, SlotCannotStart
from paddler_tui.protocol.monitor import RoutingCounts
from paddler_tui.protocol.usage import TokenUsage
from paddler_tui.ui.monitor_view import (
    SeenEvents,
    agent_row,
    buffer_gauge,
    clock_level,
    event_line,
    format_bytes,
    format_seconds,
    request_row,
    slot_bar,
)
from tests.support.monitor_script import T0, event, monitor_agent, request, update


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if previous is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = previous
    time.tzset()


@pytest.mark.parametrize(
    ("age", "limit", "level"),
    [
        (0, 30_000, "ok"),
        (14_999, 30_000, "ok"),
        (15_000, 30_000, "warning"),
        (23_999, 30_000, "warning"),
        (24_000, 30_000, "error"),
        (99_000, 30_000, "error"),
        (99_000, 0, "ok"),
    ],
)
def test_clock_turns_warning_at_half_and_error_at_four_fifths(
    age: int, limit: int, level: str
) -> None:
    assert clock_level(age, limit) == level


def test_slot_bar() -> None:
    assert slot_bar(0, 2) == "░░ 0/2"
    assert slot_bar(3, 4) == "███░ 3/4"
    assert slot_bar(1, 16) == "█░░░░░░░ 1/16"  # one busy slot never looks idle
    assert slot_bar(16, 16) == "████████ 16/16"
    assert slot_bar(0, 0) == "0/0"


def test_formats() -> None:
    assert format_seconds(1234) == "1.2s"
    assert format_seconds(-5) == "0.0s"
    assert format_seconds(125_000) == "2m05s"
    assert format_bytes(512) == "512B"
    assert format_bytes(1536) == "1.5KB"
    assert format_bytes(3 * 2**30) == "3.0GB"


def test_agent_row() -> None:
    row = agent_row(
        monitor_agent(
            "a1",
            "alpha",
            slots_busy=1,
            model_path="/m/SmolLM2-135M-Instruct.Q4_1.gguf",
            state_application_status="AttemptedAndRetrying",
            download_current=2**20,
            download_total=4 * 2**20,
            download_filename="m.gguf",
            issues=[
                ModelFileDoesNotExist(model_path="/x"),
                SlotCannotStart(error="oom", slot_index=0),
            ],
        )
    )
    assert (row.name, row.slots, row.model, row.state) == (
        "alpha",
        "█░ 1/2",
        "SmolLM2-135M-In…",
        "retrying",
    )
    assert row.download == "25% 4.0MB"
    assert row.issues == "ModelFileDoesNotExist +1"
    unnamed = agent_row(
        monitor_agent("a2", None, model_path=None, download_filename="f", download_current=10)
    )
    assert (unnamed.name, unnamed.model, unnamed.download) == ("a2", "—", "10B…")


def test_request_clocks_race_the_right_timeout() -> None:
    running = request("r1", phase="running", agent="alpha", started=T0, last=T0 + 5_000, tokens=9)
    buffered = request(
        "r2", phase="buffered", agent=None, started=T0 + 1_000, last=T0 + 1_000, tokens=0
    )
    current = update(30, agents=[], requests=[running, buffered])
    now = T0 + 30_000
    row = request_row(running, current, now)
    assert (row.clock, row.level, row.agent, row.tokens) == ("25.0s / 30.0s", "error", "alpha", 9)
    queued = request_row(buffered, current, now)
    assert (queued.clock, queued.level, queued.agent) == ("29.0s / 10.0s", "error", "—")


def test_buffer_gauge() -> None:
    gauge = buffer_gauge(update(0, agents=[], buffered=20))
    assert (gauge.text, gauge.level) == ("buffered 20/30 · timeout 10.0s", "warning")
    fallback = buffer_gauge(
        update(0, agents=[], buffered=2).model_copy(
            update={
                "buffer": update(0, agents=[]).buffer.model_copy(
                    update={"buffered": 2, "max_buffered": 0, "timeout_ms": 0}
                )
            }
        )
    )
    assert (fallback.text, fallback.limit) == ("buffered 2", 0)


def test_event_lines_carry_the_status_codes() -> None:
    lost = event_line(
        event(3, "agent_lost", "Agent controller connection closed", agent_name="beta")
    )
    assert (lost.time, lost.code, lost.label, lost.text, lost.level) == (
        "12:00:03",
        "502",
        "agent lost",
        "beta: Agent controller connection closed",
        "error",
    )
    assert event_line(event(0, "agent_lost", "Failed to generate response")).code == "500"
    assert event_line(event(0, "buffer_overflow", "Buffered requests overflow")).code == "503"
    assert event_line(event(0, "buffer_timeout", "x")).code == "504"
    assert event_line(event(0, "item_timeout", "x")).code == "504"
    cancelled = event_line(event(0, "client_cancelled", "left", agent_name="alpha"))
    assert (cancelled.code, cancelled.level) == ("", "warning")
    joined = event_line(event(0, "agent_joined", "alpha joined", agent_name="alpha"))
    assert (joined.label, joined.text, joined.level) == ("joined", "alpha joined", "ok")
    usage = TokenUsage.zero().model_copy(update={"content_tokens": 12})
    done = event_line(event(0, "request_completed", "Done", usage=usage, tokens_per_second=6.0))
    assert done.text == "Done: 12 tokens, 6.0 tok/s"


def test_slot_totals() -> None:
    current = update(
        0, agents=[monitor_agent("a", "a", slots_busy=1), monitor_agent("b", "b", slots_busy=2)]
    )
    assert slot_totals(current) == (3, 4)


def test_events_seen_before_a_reconnection_are_not_shown_again() -> None:
    seen = SeenEvents(remembered=2)
    first = [event(1, "agent_joined", "a joined"), event(2, "agent_joined", "b joined")]
    assert seen.fresh(first) == first
    again = [*first, event(3, "agent_left", "a left")]
    assert seen.fresh(again) == [again[2]]
    # Only the newest are remembered: the oldest would show again.
    assert seen.fresh(first[:1]) == first[:1]
    assert seen.fresh(again[2:]) == []


def test_agent_row_cache() -> None:
    routed = RoutingCounts(prefix_hit=12, fallback=3, least_busy=5)
    row = agent_row(
        monitor_agent("a1", "alpha", prompt_tokens=2000, cached_prompt_tokens=1234, routed=routed)
    )
    assert row.cache == "62% · 12/20"
    assert agent_row(monitor_agent("a1", "alpha")).cache == "—"  # nothing routed to it yet
    # Routed, but none finished yet: no share to tell.
    running = agent_row(monitor_agent("a1", "alpha", routed=RoutingCounts(least_busy=1)))
    assert running.cache == "— · 0/1"
