"""Server-sent event streams of snapshots: one now, one after every change, keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from paddler_tui.server.balancer.change_signal import ChangeSignal

KEEP_ALIVE_S = 10.0


async def snapshot_events(
    signal: ChangeSignal,
    snapshot: Callable[[], bytes],
    *,
    ended: Callable[[], bool] = lambda: False,
    keep_alive_s: float = KEEP_ALIVE_S,
) -> AsyncIterator[bytes]:
    """``data: <snapshot>`` now and after each change (identical snapshots are skipped).

    The stream ends once ``ended()`` is true (checked after every change): at shutdown, so an
    open subscriber never holds the balancer's exit up.
    """
    last: bytes | None = None
    while not ended():
        generation = signal.generation
        current = snapshot()
        if current != last:
            yield b"data: " + current + b"\n\n"
            last = current
        if ended():
            return
        try:
            async with asyncio.timeout(keep_alive_s):
                await signal.wait_after(generation)
        except TimeoutError:
            yield b": keep-alive\n\n"
        # Let a burst of changes settle into one event.
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
