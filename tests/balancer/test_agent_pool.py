"""The agent pool and its controllers: least-busy choice, slot accounting, status reports.

Paddler's dispatch-pool unit tests (behaviour spec §1.2), on fake agents with no sockets, then
prefix-aware routing through the pool.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from paddler_tui.server.balancer.agent_controller import (
    AgentDisconnectedError,
    BalancerShuttingDownError,
)
from paddler_tui.server.balancer.agent_pool import AgentAlreadyRegisteredError, AgentPool
from paddler_tui.server.balancer.routing.policy import Routing
from paddler_tui.server.balancer.slot_buffer import BufferOverflowError, SlotBuffer
from tests.balancer.pool_fakes import make_agent
from tests.support.agent_status import status
from tests.support.generated_tokens import done


def pool_of(*slots: int) -> AgentPool:
    pool = AgentPool()
    for index, count in enumerate(slots):
        pool.register(make_agent(f"agent-{index}", slots=count)[0])
    return pool


async def test_concurrent_dispatch_spreads_evenly_over_idle_agents() -> None:
    pool = pool_of(4, 4, 4, 4)
    buffer = SlotBuffer(pool, max_buffered=0, timeout_ms=1000)
    start = asyncio.Event()

    async def caller() -> str:
        await start.wait()
        return (await buffer.acquire()).agent.id

    callers = [asyncio.create_task(caller()) for _ in range(16)]
    await asyncio.sleep(0)
    start.set()
    chosen = await asyncio.gather(*callers)

    assert Counter(chosen) == {f"agent-{i}": 4 for i in range(4)}
    # Least busy first: every round of four claims touches each agent once.
    assert all(len(set(chosen[i : i + 4])) == 4 for i in range(0, 16, 4))
    assert [agent.slots_processing for agent in pool.agents()] == [4, 4, 4, 4]


async def test_concurrent_callers_never_oversubscribe_a_single_slot() -> None:
    pool = pool_of(1)
    buffer = SlotBuffer(pool, max_buffered=0, timeout_ms=1000)
    start = asyncio.Event()

    async def caller() -> bool:
        await start.wait()
        try:
            await buffer.acquire()
        except BufferOverflowError:
            return False
        return True

    callers = [asyncio.create_task(caller()) for _ in range(256)]
    await asyncio.sleep(0)
    start.set()
    acquired = await asyncio.gather(*callers)

    assert acquired.count(True) == 1
    assert pool.slots_processing == 1


def test_least_busy_is_by_absolute_count_not_ratio() -> None:
    pool = AgentPool()
    big, _ = make_agent("big", slots=8)
    small, _ = make_agent("small", slots=2)
    pool.register(big)
    pool.register(small)
    big.slots_processing = 3  # 3/8 busy, less busy than 1/2 by ratio
    small.slots_processing = 1

    lease = pool.try_claim()

    assert lease is not None
    assert lease.agent is small


def test_agents_without_a_free_slot_are_never_chosen() -> None:
    pool = AgentPool()
    no_model, _ = make_agent("no-model", slots=0)
    gone, _ = make_agent("gone", slots=4)
    busy, _ = make_agent("busy", slots=1)
    for agent in (no_model, gone, busy):
        pool.register(agent)
    gone.connected = False
    busy.slots_processing = 1

    assert pool.try_claim() is None
    assert [a.slots_processing for a in (no_model, gone, busy)] == [0, 0, 1]


def test_release_decrements_once_and_notifies() -> None:
    pool = pool_of(1)
    lease = pool.try_claim()
    assert lease is not None
    assert lease.agent.slots_processing == 1
    before = pool.changed.generation

    lease.release()
    lease.release()

    assert lease.agent.slots_processing == 0
    assert pool.changed.generation == before + 1


async def test_release_wakes_a_subscriber() -> None:
    pool = pool_of(1)
    lease = pool.try_claim()
    assert lease is not None
    generation = pool.changed.generation
    woken = asyncio.create_task(pool.changed.wait_after(generation))
    await asyncio.sleep(0)
    assert not woken.done()

    lease.release()

    assert await asyncio.wait_for(woken, 1) > generation


def test_status_report_never_overwrites_the_balancers_slot_count() -> None:
    """Paddler bug #56: the agent's own slots_processing must not clobber the balancer's."""
    pool = pool_of(2)
    lease = pool.try_claim()
    assert lease is not None
    agent = lease.agent

    agent.apply_status(status(slots_total=2, version=7, slots_processing=0))

    assert agent.slots_processing == 1
    assert agent.snapshot().slots_processing == 1
    assert pool.snapshot().agents[0].slots_processing == 1


def test_status_report_with_an_older_version_is_discarded() -> None:
    agent, _ = make_agent("a", slots=2)
    assert agent.apply_status(status(slots_total=4, version=5))

    assert not agent.apply_status(status(slots_total=1, version=3, model_path="/other.gguf"))

    assert agent.slots_total == 4
    assert agent.snapshot().model_path == "/models/m.gguf"


def test_newer_status_with_a_model_path_change_is_applied() -> None:
    agent, _ = make_agent("a", slots=2)

    assert agent.apply_status(status(slots_total=2, version=1, model_path="/new.gguf"))

    assert agent.snapshot().model_path == "/new.gguf"


def test_status_report_with_nothing_new_reports_no_change() -> None:
    agent, _ = make_agent("a", slots=2)
    assert agent.apply_status(status(slots_total=2, version=1, download_current=5))

    # Only the version and the agent's own busy count differ: nothing meaningful.
    assert not agent.apply_status(status(slots_total=2, version=2, download_current=5))
    assert not agent.apply_status(
        status(slots_total=2, version=3, download_current=5, slots_processing=2)
    )


def test_registering_a_live_id_twice_is_refused() -> None:
    pool = AgentPool()
    first, _ = make_agent("same", slots=1)
    second, _ = make_agent("same", slots=3)
    pool.register(first)

    with pytest.raises(AgentAlreadyRegisteredError):
        pool.register(second)

    assert pool.get("same") is first
    assert pool.slots_total == 1


async def test_removing_an_agent_fails_its_waiting_requests_with_disconnect() -> None:
    pool = AgentPool()
    agent, _ = make_agent("a", slots=1)
    pool.register(agent)
    channel = agent.open_channel("request-1")

    pool.remove(agent)

    assert "a" not in pool
    assert isinstance(channel.get_nowait(), AgentDisconnectedError)
    # A channel opened after the socket closed learns it at once, too.
    assert isinstance(agent.open_channel("late").get_nowait(), AgentDisconnectedError)


def test_removing_a_stale_controller_keeps_the_live_registration() -> None:
    pool = AgentPool()
    stale, _ = make_agent("same", slots=1)
    live, _ = make_agent("same", slots=1)
    pool.register(live)

    pool.remove(stale)

    assert pool.get("same") is live
    assert live.connected


async def test_shutdown_tells_every_waiting_request() -> None:
    pool = pool_of(1, 1)
    channels = [agent.open_channel(f"r-{agent.id}") for agent in pool.agents()]

    pool.shut_down()

    assert all(isinstance(c.get_nowait(), BalancerShuttingDownError) for c in channels)


async def test_responses_reach_only_their_request() -> None:
    agent, _ = make_agent("a", slots=2)
    first = agent.open_channel("first")
    second = agent.open_channel("second")

    agent.deliver("second", done())
    agent.deliver("unknown", done())  # a late answer to a closed request is dropped

    assert first.empty()
    assert second.get_nowait() == done()


def test_totals_sum_over_agents_with_the_balancers_counts() -> None:
    pool = pool_of(2, 3)
    assert pool.try_claim() is not None
    assert pool.try_claim() is not None

    assert (pool.slots_total, pool.slots_processing) == (5, 2)
    assert sorted(a.slots_processing for a in pool.snapshot().agents) == [1, 1]


# Prefix-aware routing (paddler-tui; issue #15).

CHAIN = (11, 12, 13)


def test_a_request_goes_to_the_agent_that_served_its_prefix_while_within_the_imbalance() -> None:
    pool = pool_of(2, 2)
    first = pool.try_claim(CHAIN[:2])
    assert first is not None

    follow_up = pool.try_claim(CHAIN)  # agent-0 is busier, but holds the prefix

    assert follow_up is not None
    assert follow_up.agent is first.agent
    assert dict(first.agent.routed) == {"least_busy": 1, "prefix_hit": 1}
    assert dict(pool.decisions) == {"least_busy": 1, "prefix_hit": 1}
    assert first.agent.prefixes.match_depth(CHAIN) == 3


def test_the_prefix_holder_without_a_free_slot_falls_back_to_the_least_busy() -> None:
    pool = pool_of(1, 1)
    holder = pool.try_claim(CHAIN)
    assert holder is not None

    other = pool.try_claim(CHAIN)

    assert other is not None
    assert other.agent is not holder.agent
    assert other.agent.routed == {"fallback": 1}


def test_least_busy_routing_ignores_prefixes_but_counts_requests() -> None:
    pool = AgentPool(Routing("least-busy"))
    for name in ("a", "b"):
        pool.register(make_agent(name, slots=2)[0])
    first = pool.try_claim(CHAIN)
    assert first is not None

    second = pool.try_claim(CHAIN)

    assert second is not None
    assert second.agent is not first.agent
    assert pool.decisions == {"least_busy": 2}
    assert first.agent.prefixes.match_depth(CHAIN) == 0


def test_requests_without_a_chain_are_neither_routed_by_prefix_nor_counted() -> None:
    pool = pool_of(2, 2)
    assert pool.try_claim(CHAIN) is not None

    lease = pool.try_claim(None)  # an embedding request

    assert lease is not None
    assert lease.agent.id == "agent-1"
    assert pool.decisions == {"least_busy": 1}


def test_decision_counts_outlive_the_agent() -> None:
    pool = pool_of(1)
    lease = pool.try_claim(CHAIN)
    assert lease is not None

    pool.remove(lease.agent)

    assert pool.decisions == {"least_busy": 1}


def test_another_model_forgets_the_agents_prefixes() -> None:
    pool = pool_of(1)
    lease = pool.try_claim(CHAIN)
    assert lease is not None
    agent = lease.agent

    agent.apply_status(status(slots_total=1, version=1, model_path="/models/m.gguf"))
    assert agent.prefixes.match_depth(CHAIN) == 3
    agent.apply_status(status(slots_total=1, version=2, model_path="/models/other.gguf"))

    assert agent.prefixes.match_depth(CHAIN) == 0
