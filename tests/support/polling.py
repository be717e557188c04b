"""Waiting, from code that may block, for a condition another process makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


def poll_until(
    condition: Callable[[], object], *, timeout: float, what: str = "", interval: float = 0.05
) -> None:
    """Return once ``condition()`` is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(interval)
