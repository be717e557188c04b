from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.management import ManagementClient
from paddler_tui.client.monitoring.feed import (
    FeedConnected,
    FeedDisconnected,
    FeedEvent,
    FeedUpdate,
    monitor_feed,
)
from tests.support.fake_balancer import FakeBalancer, FakeScript, agent_snapshot
from tests.support.monitor_script import busy_minute


async def take(feed: AsyncIterator[FeedEvent], count: int) -> list[FeedEvent]:
    return [await asyncio.wait_for(anext(feed), 10) for _ in range(count)]


async def test_the_monitor_socket_is_preferred() -> None:
    script = busy_minute()[:3]
    with FakeBalancer(FakeScript(monitor=list(script))) as fake:
        client = ManagementClient(fake.management_addr)
        feed = monitor_feed(client, fake.management_addr)
        async with closing(feed):
            events = await take(feed, 4)
        await client.aclose()
    assert events[0] == FeedConnected("monitor socket")
    assert [event.update for event in events[1:] if isinstance(event, FeedUpdate)] == script


async def test_without_it_the_sse_streams_are_used() -> None:
    with FakeBalancer() as fake:  # no monitor socket, as Paddler
        client = ManagementClient(fake.management_addr)
        feed = monitor_feed(client, fake.management_addr, now_ms=lambda: 5000)
        async with closing(feed):
            first = await take(feed, 3)
            fake.set_agents([agent_snapshot("a2", "beta"), agent_snapshot("a3", "gamma")])
            changed = await take(feed, 1)
        await client.aclose()
    assert first[0] == FeedConnected("SSE streams")
    assert all(isinstance(event, FeedUpdate) for event in first[1:] + changed)
    assert isinstance(changed[0], FeedUpdate)
    update = changed[0].update
    assert [agent.name for agent in update.agents] == ["beta", "gamma"]
    assert [(event.kind, event.message) for event in update.events] == [
        ("agent_joined", "gamma joined"),
        ("agent_left", "alpha left"),
    ]


async def test_it_reports_disconnection_and_reconnects() -> None:
    with FakeBalancer(FakeScript(monitor=busy_minute()[:1])) as fake:
        client = ManagementClient(fake.management_addr)
        feed = monitor_feed(client, fake.management_addr, retry_s=0.1)
        async with closing(feed):
            assert await take(feed, 2) == [
                FeedConnected("monitor socket"),
                FeedUpdate(busy_minute()[0]),
            ]
            await asyncio.to_thread(fake.stop)
            down = await take(feed, 2)
            await asyncio.to_thread(fake.start)
            while not isinstance(event := (await take(feed, 1))[0], FeedConnected):
                assert isinstance(event, FeedDisconnected)
        await client.aclose()
    assert all(isinstance(event, FeedDisconnected) for event in down)
