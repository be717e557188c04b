from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import pytest

from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.metrics import Gauges
from paddler_tui.server.balancer.statsd import report_statsd, statsd_datagrams


@contextlib.asynccontextmanager
async def collector() -> AsyncIterator[tuple[socket.socket, HostPort]]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock, HostPort("127.0.0.1", sock.getsockname()[1])


async def receive(sock: socket.socket, count: int) -> list[str]:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(2):
        return [(await loop.sock_recv(sock, 1024)).decode() for _ in range(count)]


@contextlib.asynccontextmanager
async def reporting(target: HostPort, gauges: list[Gauges]) -> AsyncIterator[None]:
    task = asyncio.create_task(report_statsd(target, "paddler_", 20, lambda: gauges[0]))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_reports_three_gauges_now_and_then_every_interval() -> None:
    current = [Gauges(slots_processing=3, slots_total=4, requests_buffered=1)]
    async with collector() as (sock, target), reporting(target, current):
        assert await receive(sock, 3) == [
            "paddler_slots_processing:3|g",
            "paddler_slots_total:4|g",
            "paddler_requests_buffered:1|g",
        ]
        current[0] = Gauges(slots_processing=0, slots_total=4, requests_buffered=0)
        later = await receive(sock, 6)
        assert later[-3:] == [
            "paddler_slots_processing:0|g",
            "paddler_slots_total:4|g",
            "paddler_requests_buffered:0|g",
        ]


async def test_negative_values_are_not_sent(caplog: pytest.LogCaptureFixture) -> None:
    current = [Gauges(slots_processing=-1, slots_total=4, requests_buffered=0)]
    with caplog.at_level(logging.WARNING):
        async with collector() as (sock, target), reporting(target, current):
            await asyncio.sleep(0.1)
            current[0] = Gauges(slots_processing=2, slots_total=4, requests_buffered=0)
            assert (await receive(sock, 1)) == ["paddler_slots_processing:2|g"]
    assert "negative slots_processing" in caplog.text


def test_datagrams_are_rejected_when_any_gauge_is_negative() -> None:
    assert statsd_datagrams("p_", Gauges(0, 0, -2)) is None
    assert statsd_datagrams("p_", Gauges(1, 2, 3)) == [
        b"p_slots_processing:1|g",
        b"p_slots_total:2|g",
        b"p_requests_buffered:3|g",
    ]


async def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        await report_statsd(HostPort("127.0.0.1", 9), "p_", 0, lambda: Gauges(0, 0, 0))
