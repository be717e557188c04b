"""The monitor socket end to end: a real balancer, real or fake agents, a real subscriber."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.envelope import GeneratedToken
from paddler_tui.protocol.generated_token import ContentToken
from paddler_tui.protocol.monitor import MonitorEvent, MonitorUpdate
from tests.support.cluster import (
    BalancerProcess,
    Cluster,
    FakeAgent,
    http_client,
    raw_prompt_body,
)

pytestmark = pytest.mark.slow


class MonitorWatcher:
    """Every frame a subscriber receives, with the time it arrived."""

    def __init__(self, balancer: BalancerProcess) -> None:
        self._addr = balancer.management_addr
        self.frames: list[tuple[float, MonitorUpdate]] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MonitorWatcher:
        self._task = asyncio.create_task(self._follow())
        await self.until(lambda _: True)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _follow(self) -> None:
        async for update in monitor_updates(self._addr):
            self.frames.append((time.monotonic(), update))
            self._arrived.set()

    @property
    def events(self) -> list[MonitorEvent]:
        return [event for _, frame in self.frames for event in frame.events]

    async def until(
        self, predicate: Callable[[MonitorUpdate], bool], timeout: float = 10
    ) -> tuple[float, MonitorUpdate]:
        async with asyncio.timeout(timeout):
            checked = 0
            while True:
                for arrived, frame in self.frames[checked:]:
                    if predicate(frame):
                        return arrived, frame
                checked = len(self.frames)
                self._arrived.clear()
                await self._arrived.wait()

    async def event(self, kind: str, timeout: float = 10) -> MonitorEvent:
        await self.until(lambda frame: any(e.kind == kind for e in frame.events), timeout)
        return next(e for e in self.events if e.kind == kind)


@contextlib.asynccontextmanager
async def streaming(balancer: BalancerProcess, max_tokens: int) -> AsyncIterator[float]:
    """A raw-prompt request running in the background; yields when it was sent."""
    async with http_client() as client:
        sent = time.monotonic()
        task = asyncio.create_task(
            client.post(
                f"{balancer.inference_url}/api/v1/continue_from_raw_prompt",
                json=raw_prompt_body(max_tokens),
            )
        )
        try:
            yield sent
            await task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_a_request_appears_counts_its_tokens_and_completes_with_usage(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("monitor").start(agents=1, slots=1, names=["agent-a"])
    async with MonitorWatcher(cluster.b) as watcher:
        [(_, first)] = watcher.frames
        assert [a.name for a in first.agents] == ["agent-a"]
        assert first.timeouts.inference_item_timeout_ms == 30000
        async with streaming(cluster.b, 60) as sent:
            seen_at, frame = await watcher.until(lambda f: bool(f.requests))
            [request] = frame.requests
            assert seen_at - sent < 0.2 + 0.1  # 200 ms, plus the HTTP request's own trip
            assert (request.agent_name, request.kind) == ("agent-a", "raw_prompt")
            await watcher.until(lambda f: any(r.tokens >= 10 for r in f.requests))
            await watcher.until(lambda f: any(a.slots_busy == 1 for a in f.agents))
        completed = await watcher.event("request_completed")
        assert completed.agent_name == "agent-a"
        assert completed.usage is not None and completed.usage.content_tokens == 60
        assert completed.tokens_per_second is not None and completed.tokens_per_second > 0
        await watcher.until(lambda f: not f.requests and f.agents[0].slots_busy == 0)


async def test_a_stalled_agent_shows_the_item_clock_then_the_timeout(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("stall")
    balancer = cluster.start_balancer("--inference-item-timeout", "1500")
    async with FakeAgent(balancer, slots=1) as fake, MonitorWatcher(balancer) as watcher:
        await watcher.until(lambda f: len(f.agents) == 1)
        async with streaming(balancer, 10):
            envelope = await fake.next_request()
            await fake.respond(envelope.id, GeneratedToken(value=ContentToken(value="one")))
            _, frame = await watcher.until(lambda f: any(r.tokens == 1 for r in f.requests))
            last_item_at = frame.requests[0].last_item_at
            # The clock runs: later frames show the same last item against a later server time.
            _, later = await watcher.until(
                lambda f: bool(f.requests) and f.server_time - last_item_at > 1000
            )
            assert later.requests[0].last_item_at == last_item_at
            assert later.requests[0].phase == "running"
            timeout = await watcher.event("item_timeout")
            assert timeout.message.startswith("Inference timed out after 1500ms")
            await watcher.until(lambda f: any(r.phase == "draining" for r in f.requests))
            assert await fake.next_stop() == envelope.id
        await watcher.until(lambda f: not f.requests, timeout=5)


async def test_a_killed_agent_shows_it_leaving_and_the_lost_request(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("kill").start(agents=1, slots=1, names=["doomed"])
    async with MonitorWatcher(cluster.b) as watcher:
        async with streaming(cluster.b, 2000):
            await watcher.until(lambda f: any(r.tokens > 0 for r in f.requests))
            cluster.agent_named("doomed").kill()
            lost = await watcher.event("agent_lost")
            assert lost.agent_name == "doomed"
            assert lost.message == "Agent controller connection closed"
        left = await watcher.event("agent_left")
        assert left.agent_name == "doomed"
        await watcher.until(lambda f: not f.agents and not f.requests)
