"""The one thread that runs every llama.cpp computation of an agent, for the process's life.

llama.cpp's CPU backend parallelises each graph with OpenMP, and libgomp keeps one team of
worker threads per thread that starts a parallel region. A second thread that computes (a
loader in an executor, then the engine loop) starts a second team; once libgomp's managed
threads outnumber the CPUs it throttles their spin-waiting, and every decode stalls on its
barriers (measured: 93 tokens/s from the first thread, 31 from a second). So loading, warm-up,
decoding, embedding and freeing all run here, one after another.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

logger = logging.getLogger(__name__)

T = TypeVar("T")

THREAD_NAME = "paddler-engine"


class ComputeThread:
    """Runs submitted calls in order on one long-lived daemon thread.

    A call may run for as long as it likes (an engine's loop runs until the engine closes);
    the calls queued behind it wait. :meth:`stop` lets the queued calls finish, then ends the
    thread.
    """

    def __init__(self, name: str = THREAD_NAME) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def ident(self) -> int | None:
        return self._thread.ident

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, function: Callable[[], T]) -> Future[T]:
        """Queue ``function``; its result or exception arrives through the future."""
        future: Future[T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(function())
            except BaseException as error:
                future.set_exception(error)

        self._calls.put(run)
        return future

    def stop(self) -> None:
        """End the thread after the calls already queued; joins unless called from it."""
        self._calls.put(None)
        if not self.is_current():
            self._thread.join()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            call()
