"""Server-sent event streams of snapshots: one now, one after every change, keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from paddler_tui.server.balancer.change_signal import ChangeSignal

KEEP_ALIVE_S = 10.0


async def snapshot_events(
    signal: ChangeSignal, snapshot: Callable[[], bytes], *, keep_alive_s: float = KEEP_ALIVE_S
) -> AsyncIterator[bytes]:
    """``data: <snapshot>`` now and after each change (identical snapshots are skipped)."""
    last: bytes | None = None
    while True:
        generation = signal.generation
        current = snapshot()
        if current != last:
            yield b"data: " + current + b"\n\n"
            last = current
        try:
            async with asyncio.timeout(keep_alive_s):
                await signal.wait_after(generation)
        except TimeoutError:
            yield b": keep-alive\n\n"
        # Let a burst of changes settle into one event.
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
