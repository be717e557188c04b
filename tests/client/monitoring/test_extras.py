"""Extra-buffers verdicts: merged into agents, and followed from the monitor socket."""

from __future__ import annotations

from collections.abc import AsyncIterator

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.monitoring.extras import (
    ExtraBuffers,
    MonitorExtras,
    follow_monitor_extras,
    with_extra_buffers,
)
from paddler_tui.protocol.agent_socket import ExtraBuffers as Reported
from tests.support.fake_balancer import FakeBalancer, FakeScript, agent_snapshot
from tests.support.monitor_script import PROBE_CRASHED as CRASHED
from tests.support.monitor_script import monitor_agent


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
