"""The request buffer: overflow, timeout, first-come-first-served waiters, cancellation, shutdown.

Paddler's buffering unit behaviours (behaviour spec §1.3), plus the fairness Paddler lacks, and
waiters pinned to their prefix holder by prefix-aware routing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from paddler_tui.server.balancer.agent_pool import AgentPool, SlotLease
from paddler_tui.server.balancer.routing.policy import Routing
from paddler_tui.server.balancer.slot_buffer import (
    BufferOverflowError,
    BufferTimeoutError,
    ShuttingDownError,
    SlotBuffer,
)
from tests.balancer.pool_fakes import make_agent, wait_until

LONG_MS = 60_000


@contextlib.asynccontextmanager
async def serving(
    *slots: int, max_buffered: int = 30, timeout_ms: int = LONG_MS
) -> AsyncIterator[SlotBuffer]:
    pool = AgentPool()
    for index, count in enumerate(slots):
        pool.register(make_agent(f"agent-{index}", slots=count)[0])
    buffer = SlotBuffer(pool, max_buffered=max_buffered, timeout_ms=timeout_ms)
    task = asyncio.create_task(buffer.run())
    try:
        yield buffer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def enqueue(buffer: SlotBuffer) -> asyncio.Task[SlotLease]:
    """Start a waiter and return once it holds its place in the buffer."""
    expected = buffer.buffered + 1
    task = asyncio.create_task(buffer.acquire())
    await wait_until(buffer.changed, lambda: buffer.buffered == expected)
    return task


async def test_a_free_slot_is_taken_without_buffering() -> None:
    async with serving(1) as buffer:
        generation = buffer.changed.generation

        lease = await buffer.acquire()

        assert lease.agent.slots_processing == 1
        assert buffer.buffered == 0
        assert buffer.changed.generation == generation


async def test_waiters_get_freed_slots_first_come_first_served() -> None:
    async with serving(1) as buffer:
        running = await buffer.acquire()
        waiters = [await enqueue(buffer) for _ in range(5)]
        served: list[int] = []
        pending = set(waiters)

        lease = running
        while pending:
            lease.release()
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            (winner,) = done
            served.append(waiters.index(winner))
            lease = winner.result()

        assert served == [0, 1, 2, 3, 4]


async def test_a_newcomer_does_not_overtake_a_waiter_when_a_slot_frees() -> None:
    pool = AgentPool()
    agent, _ = make_agent("a", slots=1)
    pool.register(agent)
    # No serving loop: the moment between a release and the loop handing the slot on is held
    # open, which is when a newcomer could take the fast path past the waiter.
    buffer = SlotBuffer(pool, max_buffered=5, timeout_ms=LONG_MS)
    running = await buffer.acquire()
    first = await enqueue(buffer)

    running.release()
    newcomer = await enqueue(buffer)

    assert agent.slots_processing == 0  # the free slot waits for the oldest waiter
    buffer._serve_waiters()
    lease = await asyncio.wait_for(first, 5)
    assert not newcomer.done()
    lease.release()
    buffer._serve_waiters()
    assert (await asyncio.wait_for(newcomer, 5)).agent is agent


async def test_a_full_buffer_overflows_at_once() -> None:
    async with serving(1, max_buffered=2) as buffer:
        await buffer.acquire()
        waiters = [await enqueue(buffer) for _ in range(2)]

        # The buffer timeout is a minute: only an immediate refusal ends this within 5 s.
        with pytest.raises(BufferOverflowError):
            await asyncio.wait_for(buffer.acquire(), 5)

        assert buffer.buffered == 2
        for task in waiters:
            task.cancel()


async def test_max_buffered_zero_refuses_whenever_every_slot_is_busy() -> None:
    async with serving(1, max_buffered=0) as buffer:
        await buffer.acquire()

        with pytest.raises(BufferOverflowError):
            await asyncio.wait_for(buffer.acquire(), 5)
        assert buffer.buffered == 0


async def test_waiting_longer_than_the_timeout_fails_no_earlier_than_it() -> None:
    async with serving(timeout_ms=200) as buffer:  # no agents at all
        loop = asyncio.get_running_loop()
        started = loop.time()

        with pytest.raises(BufferTimeoutError):
            await buffer.acquire()

        assert loop.time() - started >= 0.2
        assert buffer.buffered == 0


async def test_a_zero_timeout_fails_at_once_when_busy() -> None:
    async with serving(1, timeout_ms=0) as buffer:
        await buffer.acquire()

        with pytest.raises(BufferTimeoutError):
            await asyncio.wait_for(buffer.acquire(), 5)


async def test_a_cancelled_waiter_leaves_the_buffer_and_never_takes_a_slot() -> None:
    async with serving(1) as buffer:
        running = await buffer.acquire()
        leaving = await enqueue(buffer)
        staying = await enqueue(buffer)

        leaving.cancel()
        await wait_until(buffer.changed, lambda: buffer.buffered == 1)
        running.release()

        lease = await asyncio.wait_for(staying, 5)
        assert leaving.cancelled()
        assert lease.agent.slots_processing == 1
        assert buffer.buffered == 0


async def test_a_waiter_cancelled_in_the_moment_it_is_served_gives_the_slot_back() -> None:
    pool = AgentPool()
    agent, _ = make_agent("a", slots=1)
    pool.register(agent)
    buffer = SlotBuffer(pool, max_buffered=5, timeout_ms=LONG_MS)  # no serving loop: manual
    running = await buffer.acquire()
    waiter = await enqueue(buffer)

    running.release()
    buffer._serve_waiters()  # hands the slot to the waiter...
    assert agent.slots_processing == 1
    waiter.cancel()  # ...which is cancelled before it could resume

    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert agent.slots_processing == 0
    assert buffer.buffered == 0


async def test_a_slot_that_appears_later_serves_the_waiter() -> None:
    async with serving(0) as buffer:  # an agent whose model is not loaded yet
        waiter = await enqueue(buffer)
        (agent,) = buffer.pool.agents()

        agent.apply_status(agent.status.model_copy(update={"slots_total": 2, "version": 1}))
        buffer.pool.changed.notify()  # what the agent socket does on a meaningful change

        assert (await asyncio.wait_for(waiter, 5)).agent is agent


async def test_shutdown_fails_every_waiter_and_every_newcomer() -> None:
    async with serving(1) as buffer:
        await buffer.acquire()
        waiters = [await enqueue(buffer) for _ in range(3)]

        buffer.close()

        for task in waiters:
            with pytest.raises(ShuttingDownError):
                await task
        with pytest.raises(ShuttingDownError):
            await buffer.acquire()
        assert buffer.buffered == 0


# Waiters pinned by prefix-aware routing (paddler-tui; issue #15).

CHAIN = (21, 22)


@contextlib.asynccontextmanager
async def two_busy_agents(
    *, imbalance: int = 2, timeout_ms: int = LONG_MS
) -> AsyncIterator[tuple[SlotBuffer, SlotLease, SlotLease]]:
    """Agents ``a`` (serving CHAIN) and ``b``, one slot each, both busy; the serving loop runs."""
    pool = AgentPool(Routing(imbalance=imbalance))
    for name in ("a", "b"):
        pool.register(make_agent(name, slots=1)[0])
    buffer = SlotBuffer(pool, max_buffered=10, timeout_ms=timeout_ms)
    holder = await buffer.acquire(CHAIN)
    other = await buffer.acquire()
    assert (holder.agent.id, other.agent.id) == ("a", "b")
    task = asyncio.create_task(buffer.run())
    try:
        yield buffer, holder, other
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def pinned_to(buffer: SlotBuffer, agent_id: str) -> int:
    agent = buffer.pool.get(agent_id)
    assert agent is not None
    return agent.waiting


async def enqueue_with(
    buffer: SlotBuffer, chain: tuple[int, ...] | None
) -> asyncio.Task[SlotLease]:
    expected = buffer.buffered + 1
    task = asyncio.create_task(buffer.acquire(chain))
    await wait_until(buffer.changed, lambda: buffer.buffered == expected)
    return task


async def test_a_slot_freed_elsewhere_skips_the_waiter_pinned_to_its_prefix_holder() -> None:
    async with two_busy_agents() as (buffer, holder, other):
        pinned = await enqueue_with(buffer, (*CHAIN, 23))
        unpinned = await enqueue_with(buffer, None)
        assert pinned_to(buffer, "a") == 1

        other.release()  # b frees: the oldest waiter that may take it is the unpinned one
        assert (await asyncio.wait_for(unpinned, 5)).agent.id == "b"
        assert not pinned.done()

        holder.release()
        lease = await asyncio.wait_for(pinned, 5)
        assert lease.agent.id == "a"
        assert lease.agent.routed["prefix_hit"] == 1
        assert pinned_to(buffer, "a") == 0


async def test_a_slot_freed_on_the_holder_goes_to_the_oldest_waiter_that_may_take_it() -> None:
    async with two_busy_agents() as (buffer, holder, _):
        older = await enqueue_with(buffer, None)
        pinned = await enqueue_with(buffer, CHAIN)

        holder.release()

        assert (await asyncio.wait_for(older, 5)).agent.id == "a"
        assert not pinned.done()
        pinned.cancel()


async def test_pinned_waiters_keep_their_order() -> None:
    async with two_busy_agents() as (buffer, holder, _):
        waiters = [await enqueue_with(buffer, CHAIN) for _ in range(3)]
        assert pinned_to(buffer, "a") == 3  # loads 1, 2, 3 against b's 1: within 2

        lease = holder
        for waiter in waiters:
            lease.release()
            lease = await asyncio.wait_for(waiter, 5)
            assert lease.agent.id == "a"


async def test_a_waiter_beyond_the_imbalance_waits_for_any_agent() -> None:
    async with two_busy_agents(imbalance=0) as (buffer, holder, other):
        first = await enqueue_with(buffer, CHAIN)  # a's load 1 against b's 1
        second = await enqueue_with(buffer, CHAIN)  # a's load 2 against b's 1: unpinned
        assert pinned_to(buffer, "a") == 1

        other.release()  # b frees; a's load 1 now exceeds b's 0: the pin lapses too

        assert (await asyncio.wait_for(first, 5)).agent.id == "b"
        assert pinned_to(buffer, "a") == 0
        holder.release()
        assert (await asyncio.wait_for(second, 5)).agent.id == "a"


async def test_a_waiter_pinned_to_an_agent_that_leaves_is_served_by_another() -> None:
    async with two_busy_agents() as (buffer, holder, other):
        pinned = await enqueue_with(buffer, CHAIN)
        other.release()  # b is free, but a (load 1) is within the imbalance: still pinned
        await asyncio.sleep(0)
        assert not pinned.done()

        buffer.pool.remove(holder.agent)

        lease = await asyncio.wait_for(pinned, 5)
        assert lease.agent.id == "b"
        assert lease.agent.routed["least_busy"] == 1  # the prefix left with its holder


async def test_a_waiter_pinned_to_an_agent_that_loses_its_slots_is_unpinned_at_once() -> None:
    async with two_busy_agents() as (buffer, holder, other):
        pinned = await enqueue_with(buffer, CHAIN)
        agent = holder.agent

        agent.apply_status(agent.status.model_copy(update={"slots_total": 0, "version": 1}))
        buffer.pool.changed.notify()  # what the agent socket does on a meaningful change
        async with asyncio.timeout(5):
            while agent.waiting:  # the serving loop's next pass unpins it
                await asyncio.sleep(0)

        assert not pinned.done()  # no slot is free anywhere yet
        other.release()
        assert (await asyncio.wait_for(pinned, 5)).agent is other.agent


async def test_a_newcomer_behind_a_pinned_waiter_takes_a_slot_it_cannot() -> None:
    async with two_busy_agents() as (buffer, _, other):
        pinned = await enqueue_with(buffer, CHAIN)
        other.release()
        await asyncio.sleep(0)

        newcomer = asyncio.create_task(buffer.acquire())

        assert (await asyncio.wait_for(newcomer, 5)).agent.id == "b"
        assert not pinned.done()
        pinned.cancel()


async def test_a_pinned_waiter_times_out_like_any_other() -> None:
    async with two_busy_agents(timeout_ms=100) as (buffer, _, _):
        with pytest.raises(BufferTimeoutError):
            await buffer.acquire(CHAIN)

        assert pinned_to(buffer, "a") == 0
        assert buffer.buffered == 0


async def test_a_cancelled_or_shut_down_pinned_waiter_leaves_no_pin() -> None:
    async with two_busy_agents() as (buffer, _, _):
        leaving = await enqueue_with(buffer, CHAIN)
        staying = await enqueue_with(buffer, CHAIN)
        assert pinned_to(buffer, "a") == 2

        leaving.cancel()
        await wait_until(buffer.changed, lambda: buffer.buffered == 1)
        assert pinned_to(buffer, "a") == 1

        buffer.close()
        with pytest.raises(ShuttingDownError):
            await staying
        assert pinned_to(buffer, "a") == 0
