"""Waiting for a free slot: the request buffer, first come first served.

Paddler lets every waiter race for each freed slot; here waiters queue, and a freed slot goes
to the one that has waited longest. A new request takes the fast path only when nobody waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from paddler_tui.server.balancer.agent_pool import AgentPool, SlotLease
from paddler_tui.server.balancer.change_signal import ChangeSignal


class BufferOverflowError(Exception):
    """No slot is free and the buffer is full (503)."""


class BufferTimeoutError(Exception):
    """Waited longer than the buffered request timeout (504)."""


class ShuttingDownError(Exception):
    """The balancer is shutting down (503)."""


class SlotBuffer:
    def __init__(self, pool: AgentPool, *, max_buffered: int, timeout_ms: int) -> None:
        self.pool = pool
        self.max_buffered = max_buffered
        self.timeout_ms = timeout_ms
        self._waiters: deque[asyncio.Future[SlotLease]] = deque()
        self._closed = False
        # The buffered count changed.
        self.changed = ChangeSignal()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def buffered(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> SlotLease:
        """A claimed slot; raises BufferOverflowError, BufferTimeoutError, ShuttingDownError."""
        if self._closed:
            raise ShuttingDownError
        if not self._waiters and (lease := self.pool.try_claim()) is not None:
            return lease
        if len(self._waiters) >= self.max_buffered:
            raise BufferOverflowError
        waiter: asyncio.Future[SlotLease] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self.changed.notify()
        try:
            async with asyncio.timeout(self.timeout_ms / 1000):
                return await waiter
        except TimeoutError:
            if _served(waiter):  # the slot came in the same moment as the deadline
                return waiter.result()
            raise BufferTimeoutError from None
        except asyncio.CancelledError:
            if _served(waiter):  # served in the same moment the client went away
                waiter.result().release()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
                self.changed.notify()

    async def run(self) -> None:
        """Hand freed slots to waiters, oldest first, until cancelled."""
        generation = self.pool.changed.generation
        while True:
            self._serve_waiters()
            generation = await self.pool.changed.wait_after(generation)

    def _serve_waiters(self) -> None:
        while self._waiters:
            head = self._waiters[0]
            if head.done():  # timed out or cancelled; its task removes it
                self._waiters.popleft()
                self.changed.notify()
                continue
            lease = self.pool.try_claim()
            if lease is None:
                return
            self._waiters.popleft()
            self.changed.notify()
            head.set_result(lease)

    def close(self) -> None:
        """Shutdown: every waiter fails with ShuttingDownError."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ShuttingDownError())
        self.changed.notify()


def _served(waiter: asyncio.Future[SlotLease]) -> bool:
    return waiter.done() and not waiter.cancelled() and waiter.exception() is None
