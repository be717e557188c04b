"""The compute thread: calls run in order, one at a time, on one thread that outlives them."""

from __future__ import annotations

import threading
from functools import partial

import pytest

from paddler_tui.server.agent.engine.thread import THREAD_NAME, ComputeThread


def test_calls_run_in_order_on_one_named_thread() -> None:
    compute = ComputeThread()
    try:
        seen: list[tuple[int, str]] = []

        def record(n: int) -> None:
            seen.append((n, threading.current_thread().name))

        futures = [compute.call(partial(record, n)) for n in range(5)]
        for future in futures:
            future.result(timeout=5)
        assert seen == [(n, THREAD_NAME) for n in range(5)]
        assert compute.call(compute.is_current).result(timeout=5)
        assert not compute.is_current()
    finally:
        compute.stop()


def test_a_failing_call_reports_through_its_future_and_the_thread_lives_on() -> None:
    compute = ComputeThread()
    try:

        def fail() -> None:
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            compute.call(fail).result(timeout=5)
        assert compute.call(lambda: 42).result(timeout=5) == 42
    finally:
        compute.stop()


def test_stop_finishes_what_is_queued_then_ends_the_thread() -> None:
    compute = ComputeThread()
    release = threading.Event()
    first = compute.call(lambda: release.wait(5))
    second = compute.call(lambda: "done")
    release.set()
    compute.stop()
    assert first.result(timeout=0) is True
    assert second.result(timeout=0) == "done"
    assert not compute.alive
