"""The monitor screen's live source: the monitor socket, or Paddler's SSE streams, reconnecting.

It never ends and never raises for the balancer's sake: a lost connection becomes a
:class:`FeedDisconnected` and a new attempt :data:`RETRY_S` later, so the screen shows
"disconnected" while the balancer is down and picks up again without the user doing anything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from paddler_tui.client.async_iteration import closing
from paddler_tui.client.errors import BalancerUnreachableError, ClientError, HttpStatusError
from paddler_tui.client.management import ManagementClient
from paddler_tui.client.monitor import monitor_updates
from paddler_tui.client.monitoring.sse_fallback import FallbackMonitor
from paddler_tui.protocol.monitor import MonitorUpdate

RETRY_S = 1.0

Source = Literal["monitor socket", "SSE streams"]


@dataclass(frozen=True)
class FeedConnected:
    source: Source


@dataclass(frozen=True)
class FeedUpdate:
    update: MonitorUpdate


@dataclass(frozen=True)
class FeedDisconnected:
    reason: str


FeedEvent = FeedConnected | FeedUpdate | FeedDisconnected


def wall_clock_ms() -> int:
    return int(time.time() * 1000)


async def monitor_feed(
    management: ManagementClient,
    management_addr: str,
    *,
    retry_s: float = RETRY_S,
    now_ms: Callable[[], int] = wall_clock_ms,
) -> AsyncIterator[FeedEvent]:
    while True:
        try:
            try:
                async for event in _socket_feed(management_addr, management.api_key):
                    yield event
            except HttpStatusError:
                # No monitor socket here (Paddler): its SSE streams carry less, but live.
                async for event in _sse_feed(management, now_ms):
                    yield event
            reason = "the balancer closed the connection"
        except ClientError as error:
            reason = str(error) or type(error).__name__
        yield FeedDisconnected(reason)
        await asyncio.sleep(retry_s)


async def _socket_feed(management_addr: str, api_key: str | None) -> AsyncIterator[FeedEvent]:
    connected = False
    async with closing(monitor_updates(management_addr, api_key=api_key)) as updates:
        async for update in updates:
            if not connected:
                connected = True
                yield FeedConnected("monitor socket")
            yield FeedUpdate(update)


async def _sse_feed(
    management: ManagementClient, now_ms: Callable[[], int]
) -> AsyncIterator[FeedEvent]:
    """Both streams merged; whichever ends or fails first ends the feed."""
    fallback = FallbackMonitor()
    queue: asyncio.Queue[MonitorUpdate | ClientError] = asyncio.Queue()

    async def agents() -> None:
        async for snapshot in management.agents_stream():
            queue.put_nowait(fallback.agents(snapshot, now_ms()))

    async def buffered() -> None:
        async for snapshot in management.buffered_requests_stream():
            queue.put_nowait(fallback.buffered(snapshot.buffered_requests_current, now_ms()))

    async def pump(stream: Callable[[], Awaitable[None]]) -> None:
        try:
            await stream()
            queue.put_nowait(BalancerUnreachableError("the balancer ended a live stream"))
        except ClientError as error:
            queue.put_nowait(error)

    tasks = [asyncio.create_task(pump(agents)), asyncio.create_task(pump(buffered))]
    connected = False
    try:
        while True:
            item = await queue.get()
            if isinstance(item, ClientError):
                raise item
            if not connected:
                connected = True
                yield FeedConnected("SSE streams")
            yield FeedUpdate(item)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
