"""Clocks that tests move, so nothing under test depends on how fast the machine is."""

from __future__ import annotations


class ManualClock:
    """Reads ``now``; the test moves it by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class ScriptedClock:
    """Each reading is ``step`` seconds after the previous one: tokens/s never depends on timing."""

    def __init__(self, step: float = 0.5) -> None:
        self._now = 0.0
        self._step = step

    def __call__(self) -> float:
        self._now += self._step
        return self._now


class StepClock:
    """``start`` on the first reading and ``start + step`` ever after: every run then reports
    the same duration however many times the screen looked at the clock in between."""

    def __init__(self, start: float = 100.0, step: float = 0.5) -> None:
        self._next = start
        self._step = step

    def __call__(self) -> float:
        value = self._next
        self._next = self._next + self._step if self._step else self._next
        self._step = 0.0
        return value
