"""A timeout on each write to a client, costing a clock read per write instead of a timer.

``asyncio.timeout`` around every write schedules and cancels a timer per token, a tenth of the
balancer's work on a busy stream. Here one timer follows the writes: it is armed by a write when
none is armed, re-armed at most once per timeout while writes go on, and cancels the writing
task only when one write has waited the whole timeout (a client that reads nothing).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class WriteTimeout:
    """Guards the writes of the task that creates it; ``timeout_s`` None never times out.

    Write inside ``with WriteTimeout(...) as writes:``, calling :meth:`begin` before each write
    and :meth:`end` after it. When a write times out the task is cancelled; leaving the block
    takes that cancellation back (a real one goes on) and sets :attr:`timed_out`.
    """

    __slots__ = (
        "_expired",
        "_loop",
        "_started",
        "_task",
        "_timeout_s",
        "_timer",
        "_writes",
        "timed_out",
    )

    def __init__(self, timeout_s: float | None) -> None:
        self._timeout_s = timeout_s
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "a WriteTimeout guards the task that creates it"
        self._task = task
        self._writes = 0
        self._started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._expired = False
        self.timed_out = False

    def __enter__(self) -> WriteTimeout:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        self.close()
        if exc_type is asyncio.CancelledError and self.expired():
            self.timed_out = True
            return True
        return False

    def begin(self) -> None:
        if self._timeout_s is None:
            return
        self._writes += 1
        self._started = self._loop.time()
        if self._timer is None:
            self._arm(self._started + self._timeout_s)

    def end(self) -> None:
        self._started = None

    def expired(self) -> bool:
        """Whether the task was cancelled for a timed-out write; if so, that cancel is undone."""
        if self._expired:
            self._expired = False
            self._task.uncancel()
            return True
        return False

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, deadline: float) -> None:
        self._timer = self._loop.call_at(deadline, self._check, self._writes)

    def _check(self, write: int) -> None:
        self._timer = None
        started = self._started
        if started is None:
            return  # no write waiting; the next one arms the timer again
        if write == self._writes:  # the write this timer was armed for is still waiting
            self._expired = True
            self._task.cancel()
        else:
            assert self._timeout_s is not None
            self._arm(started + self._timeout_s)
