"""The inference engine: one llama context driven by the compute thread running the scheduler.

Callers on any thread talk to it through a queue (``submit``, ``stop``, ``close``). Events come
back in one delivery per scheduler step: a list of (job sink, event) pairs handed to the
engine's ``deliver`` callable on the compute thread, so a consumer on an event loop pays one
thread hop per step, not one per token. The thread blocks on the queue while no job is running,
so an idle engine costs nothing.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TypeAlias

from paddler_tui.server.agent.engine.extra_buffers import probe_verdict_sync
from paddler_tui.server.agent.engine.grammar import json_schema_to_gbnf
from paddler_tui.server.agent.engine.model import ModelContext
from paddler_tui.server.agent.engine.scheduler import Scheduler
from paddler_tui.server.agent.engine.thread import ComputeThread
from paddler_tui.server.agent.engine.types import (
    Deliver,
    EngineClosedError,
    EngineLoadError,
    EngineSettings,
    EventSink,
    Job,
    JobFailed,
    PromptCacheUsage,
    deliver_in_place,
)

logger = logging.getLogger(__name__)

__all__ = ["Engine", "EngineClosedError", "EngineLoadError"]


@dataclass(frozen=True, slots=True)
class _Submit:
    job: Job
    sink: EventSink


@dataclass(frozen=True, slots=True)
class _Stop:
    job_id: str


@dataclass(frozen=True, slots=True)
class _Close:
    pass


_Command: TypeAlias = _Submit | _Stop | _Close


class Engine:
    """A loaded model serving ``slots`` concurrent generation jobs by continuous batching,
    and embedding jobs in between."""

    def __init__(
        self, model: ModelContext, *, thread: ComputeThread, owns_thread: bool, deliver: Deliver
    ) -> None:
        """Use :meth:`load`; this takes ownership of an already warmed-up model context, and
        runs on ``thread``, the one that loaded it."""
        self._model = model
        self.settings = model.settings
        # Read-only facts, gathered before the thread starts so any thread may read them.
        self.metadata: dict[str, str] = model.metadata()
        self.chat_template: str | None = model.chat_template()
        self.bos_token = model.special_token_text(model.bos_id)
        self.eos_token = model.special_token_text(model.eos_id)
        self.n_ctx = model.n_ctx
        self.n_ctx_seq = model.n_ctx_seq
        self.n_batch = model.n_batch
        self.slots = model.n_seq_max
        self._commands: queue.SimpleQueue[_Command] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._closed = False
        self._model_lock = threading.Lock()
        self._model_freed = False
        self._deliver = deliver
        self._scheduler = Scheduler(model, release=self._release)
        self._thread = thread
        self._owns_thread = owns_thread
        # Queued behind the load that created this engine, so the loop follows it directly.
        self._loop: Future[None] = thread.call(self._run)

    @classmethod
    def start_loading(
        cls,
        settings: EngineSettings,
        *,
        thread: ComputeThread | None = None,
        deliver: Deliver = deliver_in_place,
    ) -> Future[Engine]:
        """Load the model, create and warm up its context, all on ``thread``; the future
        raises EngineLoadError.

        An agent passes its one compute thread, which must be idle (the previous engine
        closed). Without one the engine gets a thread of its own, ended when it closes.
        """
        owns_thread = thread is None
        compute = ComputeThread() if thread is None else thread

        def load() -> Engine:
            try:
                model = ModelContext.load(_with_extra_buffers_decided(settings))
                try:
                    model.warm_up()
                    return cls(model, thread=compute, owns_thread=owns_thread, deliver=deliver)
                except BaseException:
                    model.free()
                    raise
            except Exception as error:
                if owns_thread:
                    compute.stop()  # from its own thread: ends after this call, no join
                if isinstance(error, EngineLoadError):
                    raise
                raise EngineLoadError("slot_cannot_start", f"{error}") from error

        return compute.call(load)

    @classmethod
    def load(
        cls,
        settings: EngineSettings,
        *,
        thread: ComputeThread | None = None,
        deliver: Deliver = deliver_in_place,
    ) -> Engine:
        """:meth:`start_loading`, waited for; raises EngineLoadError."""
        return cls.start_loading(settings, thread=thread, deliver=deliver).result()

    # Thread-safe API.

    @property
    def slots_processing(self) -> int:
        """Jobs submitted and not yet ended (their terminal event is about to be or was sent)."""
        with self._lock:
            return self._in_flight

    @property
    def prompt_cache_usage(self) -> PromptCacheUsage:
        """What the prompt cache in host memory keeps, as of the engine's last change to it."""
        return self._scheduler.prompt_cache_usage

    def tokenize(self, text: str, *, add_bos: bool, parse_special: bool) -> list[int]:
        """Raises EngineClosedError once the engine is closed."""
        # The vocabulary is read-only after load, so this is safe next to a running decode;
        # the lock only keeps the model from being freed under it.
        with self._model_lock:
            if self._model_freed:
                raise EngineClosedError("the engine is closed")
            return self._model.tokenize(text, add_bos=add_bos, parse_special=parse_special)

    def is_single_token(self, text: str) -> bool:
        """Whether ``text`` is one token of the vocabulary (special tokens included)."""
        return len(self.tokenize(text, add_bos=False, parse_special=True)) == 1

    @staticmethod
    def json_schema_grammar(schema: str) -> str:
        """The GBNF (root rule ``root``) for a JSON Schema; raises GrammarConversionError.

        Pure Python and thread-safe; slow for huge schemas, so call it off the event loop.
        """
        return json_schema_to_gbnf(schema)

    def detokenize(self, tokens: list[int]) -> str:
        """Raises EngineClosedError once the engine is closed."""
        with self._model_lock:
            if self._model_freed:
                raise EngineClosedError("the engine is closed")
            return self._model.detokenize(tokens)

    def submit(self, job: Job, sink: EventSink) -> None:
        """Queue a job; its events (tokens or documents, then exactly one terminal event) go
        to ``sink``.

        The sink runs on the engine thread and must not block; once the engine is closed it
        gets its JobFailed at once, on the calling thread.
        """
        with self._lock:
            if not self._closed:
                self._in_flight += 1
                self._commands.put(_Submit(job, sink))
                return
        self._deliver([(sink, JobFailed(job.job_id, "internal", "the engine is closed"))])

    def stop(self, job_id: str) -> None:
        """Ask a job to end; it finishes at the next step with reason ``stopped``."""
        self._commands.put(_Stop(job_id))

    def close(self) -> None:
        """Stop the thread (running jobs finish as ``stopped``) and free the model; idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._commands.put(_Close())
        if self._thread.is_current():
            return
        self._loop.result()
        if self._owns_thread:
            self._thread.stop()

    # The engine thread.

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _run(self) -> None:
        scheduler = self._scheduler
        try:
            while True:
                # Block only while idle; with jobs running, take what is queued and step on.
                command: _Command | None = (
                    self._next_command() if scheduler.has_work else self._commands.get()
                )
                while command is not None:
                    if not self._apply(command):
                        return
                    command = self._next_command()
                scheduler.step()
                self._flush()
        except BaseException:
            logger.exception("the engine thread crashed")
            scheduler.fail_all("the engine crashed")
        finally:
            with self._lock:
                self._closed = True
            self._reject_queued()
            scheduler.free()
            self._flush()
            with self._model_lock:
                self._model_freed = True
                self._model.free()

    def _flush(self) -> None:
        delivery = self._scheduler.take_events()
        if delivery:
            try:
                self._deliver(delivery)
            except Exception:
                logger.exception("engine event delivery failed")

    def _next_command(self) -> _Command | None:
        try:
            return self._commands.get_nowait()
        except queue.Empty:
            return None

    def _reject_queued(self) -> None:
        """Answer jobs still queued when the thread ends (only possible after a crash)."""
        while (command := self._next_command()) is not None:
            if isinstance(command, _Submit):
                self._scheduler.reject(command.job, command.sink, "the engine is closed")

    def _apply(self, command: _Command) -> bool:
        """Apply one command; False once the engine must shut down."""
        if isinstance(command, _Submit):
            self._scheduler.admit(command.job, command.sink)
        elif isinstance(command, _Stop):
            self._scheduler.request_stop(command.job_id)
        else:
            self._scheduler.stop_all()
            return False
        return True


def _with_extra_buffers_decided(settings: EngineSettings) -> EngineSettings:
    if settings.use_extra_buffers is not None:
        return settings
    verdict = probe_verdict_sync(settings.model_path, threads=settings.n_threads)
    return replace(settings, use_extra_buffers=verdict.enabled)
