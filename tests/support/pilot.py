"""Waiting on a Textual app under test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from textual.pilot import Pilot

AppResult = TypeVar("AppResult")


async def wait_until(
    pilot: Pilot[AppResult], predicate: Callable[[], bool], *, timeout: float = 10.0, what: str = ""
) -> None:
    """Let the app run until ``predicate()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'the condition'}")
        await pilot.pause(0.02)
