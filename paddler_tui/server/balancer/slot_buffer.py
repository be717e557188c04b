"""Waiting for a free slot: the request buffer, first come first served.

Paddler lets every waiter race for each freed slot; here waiters queue, and a freed slot goes
to the one that has waited longest among those that can take it. A new request takes the fast
path only when nobody waits.

With prefix-aware routing a waiter may be pinned to the agent holding its prompt's prefix
(:meth:`AgentPool.wait_target`): a slot freed on agent A goes to the oldest waiter that is
unpinned or pinned to A. A pin lasts while the agent is there with slots and its load, counting
the waiters pinned to it ahead of this one, stays within the routing imbalance of the least
loaded agent's; otherwise the waiter is unpinned at once and any agent may serve it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from dataclasses import dataclass

from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.agent_pool import AgentPool, SlotLease
from paddler_tui.server.balancer.change_signal import ChangeSignal, wait_for_any
from paddler_tui.server.balancer.routing.prefix_chain import PrefixChain


class BufferOverflowError(Exception):
    """No slot is free and the buffer is full (503)."""


class BufferTimeoutError(Exception):
    """Waited longer than the buffered request timeout (504)."""


class ShuttingDownError(Exception):
    """The balancer is shutting down (503)."""


@dataclass(eq=False, slots=True)
class _Waiter:
    lease: asyncio.Future[SlotLease]
    chain: PrefixChain | None
    # The agent it waits for; None: any.
    pinned: AgentController | None = None


class SlotBuffer:
    def __init__(self, pool: AgentPool, *, max_buffered: int, timeout_ms: int) -> None:
        self.pool = pool
        self.max_buffered = max_buffered
        self.timeout_ms = timeout_ms
        self._waiters: deque[_Waiter] = deque()
        self._closed = False
        # The buffered count changed.
        self.changed = ChangeSignal()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered(self) -> int:
        return len(self._waiters)

    async def acquire(self, chain: PrefixChain | None = None) -> SlotLease:
        """A claimed slot for a request with this prefix chain (None: not routed by prefix).

        Raises BufferOverflowError, BufferTimeoutError, ShuttingDownError.
        """
        if self._closed:
            raise ShuttingDownError
        if not self._waiters and (lease := self.pool.try_claim(chain)) is not None:
            return lease
        if len(self._waiters) >= self.max_buffered:
            raise BufferOverflowError
        waiter = _Waiter(asyncio.get_running_loop().create_future(), chain)
        self._pin(waiter, self.pool.wait_target(chain))
        self._waiters.append(waiter)
        self.changed.notify()
        try:
            async with asyncio.timeout(self.timeout_ms / 1000):
                return await waiter.lease
        except TimeoutError:
            if _served(waiter.lease):  # the slot came in the same moment as the deadline
                return waiter.lease.result()
            raise BufferTimeoutError from None
        except asyncio.CancelledError:
            if _served(waiter.lease):  # served in the same moment the client went away
                waiter.lease.result().release()
            raise
        finally:
            self._pin(waiter, None)
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
                self.changed.notify()

    async def run(self) -> None:
        """Hand freed slots to waiters, oldest first, until cancelled.

        A pass runs on every change of the pool and of the buffer: a newcomer behind pinned
        waiters may be able to take a slot that none of them can.
        """
        while True:
            marks = [(self.pool.changed, self.pool.changed.generation)]
            marks.append((self.changed, self.changed.generation))
            self._serve_waiters()
            await wait_for_any(marks)

    def _serve_waiters(self) -> None:
        pool = self.pool
        # Waiters pinned to each agent that go on waiting, older than the one at hand.
        ahead: Counter[AgentController] = Counter()
        full = False  # no slot is free anywhere: later waiters only have their pins checked
        for waiter in list(self._waiters):
            if waiter.lease.done():  # timed out or cancelled; its task removes it
                self._remove(waiter)
                continue
            pinned = waiter.pinned
            if pinned is not None and not pool.keeps_waiter(pinned, ahead[pinned]):
                self._pin(waiter, None)
                pinned = None
            if full:
                if pinned is not None:
                    ahead[pinned] += 1
                continue
            if pinned is not None:
                lease = pool.claim_on(pinned, waiter.chain)
                if lease is None:
                    ahead[pinned] += 1
                    continue
            else:
                lease = pool.try_claim(waiter.chain)
                if lease is None:
                    full = True
                    continue
            self._pin(waiter, None)
            self._remove(waiter)
            waiter.lease.set_result(lease)

    def _remove(self, waiter: _Waiter) -> None:
        self._waiters.remove(waiter)
        self.changed.notify()

    @staticmethod
    def _pin(waiter: _Waiter, agent: AgentController | None) -> None:
        if waiter.pinned is not None:
            waiter.pinned.waiting -= 1
        waiter.pinned = agent
        if agent is not None:
            agent.waiting += 1

    def close(self) -> None:
        """Shutdown: every waiter fails with ShuttingDownError."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            self._pin(waiter, None)
            if not waiter.lease.done():
                waiter.lease.set_exception(ShuttingDownError())
        self.changed.notify()


def _served(lease: asyncio.Future[SlotLease]) -> bool:
    return lease.done() and not lease.cancelled() and lease.exception() is None
