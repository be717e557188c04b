"""A broadcast "something changed" signal for many asyncio waiters."""

from __future__ import annotations

import asyncio


class ChangeSignal:
    """Waiters see every change that happens after they started waiting.

    Unlike a bare ``asyncio.Event``, :meth:`notify` wakes everyone currently waiting and the
    next waiter waits for the next change, so no one misses or double-counts a change.
    """

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.generation = 0

    def notify(self) -> None:
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()

    async def wait_after(self, generation: int) -> int:
        """Return at once if a change happened since ``generation``; the new generation."""
        if self.generation == generation:
            await self._event.wait()
        return self.generation
