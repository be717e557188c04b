"""A broadcast "something changed" signal for many asyncio waiters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence


class ChangeSignal:
    """Waiters see every change that happens after they started waiting.

    Unlike a bare ``asyncio.Event``, :meth:`notify` wakes everyone currently waiting and the
    next waiter waits for the next change, so no one misses or double-counts a change.
    """

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []
        self.generation = 0

    def notify(self) -> None:
        self.generation += 1
        # Most changes (a token counted) find no one waiting; then this is all they cost.
        if self._waiters:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            # A waiter that gave up (cancelled, timed out) must not pile up until the next change.
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def wait_after(self, generation: int) -> int:
        """Return at once if a change happened since ``generation``; the new generation."""
        if self.generation == generation:
            await self.wait()
        return self.generation


async def wait_for_any(marks: Sequence[tuple[ChangeSignal, int]]) -> None:
    """Until any of the signals changes after its generation in ``marks``; at once if one has."""
    if any(signal.generation != generation for signal, generation in marks):
        return
    # One future shared by every signal: whichever notifies first completes it.
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    for signal, _ in marks:
        signal._waiters.append(waiter)
    try:
        await waiter
    finally:
        for signal, _ in marks:
            with contextlib.suppress(ValueError):
                signal._waiters.remove(waiter)
