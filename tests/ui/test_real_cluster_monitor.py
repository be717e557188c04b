"""Acceptance: the monitor on a real cluster of 2 agents x 2 slots.

The tests share one cluster and run in file order: the second kills an agent, the third stops
and restarts the balancer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from paddler_tui.client.inference_http import InferenceHttpClient
from paddler_tui.protocol.envelope import ErrorEnvelope
from paddler_tui.protocol.inference_socket import InferenceServerMessage
from paddler_tui.protocol.requests import ContinueFromRawPromptParams
from paddler_tui.ui.screens.monitor import MonitorScreen
from paddler_tui.ui.widgets.monitor_status import MonitorStatus
from tests.support.cluster import Cluster, greedy_state
from tests.support.pilot import wait_until
from tests.ui.screen_host import ScreenHost, screen_text

pytestmark = pytest.mark.slow

# Counting keeps a small model going until max_tokens.
COUNTING = "Count from 1 to 1000, separated by commas: 1, 2, 3, 4, 5,"


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    return make_module_cluster("monitor").start(
        agents=2, slots=2, names=("alpha", "beta"), state=greedy_state()
    )


def monitor_host(cluster: Cluster) -> ScreenHost:
    return ScreenHost(
        MonitorScreen,
        inference_addr=cluster.b.inference_addr,
        management_addr=cluster.b.management_addr,
    )


def status(app: ScreenHost) -> MonitorStatus:
    return app.screen.query_one(MonitorStatus)


async def generate(client: InferenceHttpClient, max_tokens: int) -> list[InferenceServerMessage]:
    params = ContinueFromRawPromptParams(max_tokens=max_tokens, raw_prompt=COUNTING)
    return [message async for message in client.continue_from_raw_prompt(params)]


async def test_three_requests_show_three_busy_slots_then_none(cluster: Cluster) -> None:
    app = monitor_host(cluster)
    client = InferenceHttpClient(cluster.b.inference_addr)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: "slots 0/4 busy" in status(app).summary)
            requests = [asyncio.create_task(generate(client, 300)) for _ in range(3)]
            # Seen while all three still run: the monitor is pushed, not polled at the end.
            await wait_until(pilot, lambda: "slots 3/4 busy" in status(app).summary, timeout=5)
            assert not any(request.done() for request in requests)
            assert "slots 3/4 busy" in screen_text(app)
            await asyncio.gather(*requests)
            await wait_until(pilot, lambda: "slots 0/4 busy" in status(app).summary, timeout=5)
    finally:
        await client.aclose()


async def test_a_killed_agent_leaves_with_a_502(cluster: Cluster) -> None:
    app = monitor_host(cluster)
    client = InferenceHttpClient(cluster.b.inference_addr)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            request = asyncio.create_task(generate(client, 5000))

            def serving_agent() -> str | None:
                latest = screen.latest
                running = [r for r in latest.requests if r.phase == "running"] if latest else []
                return running[0].agent_name if running else None

            await wait_until(pilot, lambda: serving_agent() is not None, timeout=10)
            victim = serving_agent()
            assert victim is not None
            cluster.agent_named(victim).kill()
            await wait_until(pilot, lambda: f"{victim} left" in screen_text(app), timeout=10)
            await wait_until(pilot, lambda: "502 agent lost" in screen_text(app), timeout=10)
            messages = await asyncio.wait_for(request, 10)
            assert isinstance(messages[-1], ErrorEnvelope)
            assert messages[-1].error.code == 502
    finally:
        await client.aclose()


async def test_a_stopped_balancer_shows_disconnected_and_comes_back(cluster: Cluster) -> None:
    app = monitor_host(cluster)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: status(app).connected)
        await asyncio.to_thread(cluster.b.stop)
        await wait_until(pilot, lambda: not status(app).connected, timeout=10)
        assert "disconnected" in screen_text(app)
        await asyncio.to_thread(cluster.restart_balancer)
        await wait_until(pilot, lambda: status(app).connected, timeout=10)
        assert "live via monitor socket" in screen_text(app)
