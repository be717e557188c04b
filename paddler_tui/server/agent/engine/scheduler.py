"""The continuous-batch scheduler: slots, one shared decode per step, per-slot sampling.

Single-threaded by design: only the compute thread calls into it (llama contexts are not
thread-safe). Each step decodes one batch holding one pending token of every generating job
followed by prompt chunks of ingesting jobs, then samples every job whose logits came out.
While no job generates, a step embeds one batch of documents instead. Events are collected,
not sent: the engine takes a step's events with :meth:`Scheduler.take_events` and delivers
them at once. Each sampled token is classified here, as it is counted, and travels with its
classification; the job's end carries what the classifier still held.
"""

from __future__ import annotations

import codecs
import logging
import time
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING

from paddler_tui.server.agent.engine.batch import DECODE_NO_KV_SLOT, DECODE_OK, DecodeBatch
from paddler_tui.server.agent.engine.embedder import Embedder
from paddler_tui.server.agent.engine.prompt_cache import (
    PromptCache,
    SavedState,
    describe_budget,
    describe_size,
)
from paddler_tui.server.agent.engine.sampler import (
    CandidatesEliminatedError,
    GrammarInitError,
    SamplerChain,
)
from paddler_tui.server.agent.engine.token_prefixes import common_prefix_length
from paddler_tui.server.agent.engine.types import (
    EVICTED_MESSAGE,
    NO_FREE_SLOT_MESSAGE,
    EmbeddingJob,
    EngineEvent,
    EventSink,
    FailureKind,
    FinishReason,
    GenerationJob,
    Job,
    JobFailed,
    JobFinished,
    PromptCacheUsage,
    TokenSampled,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from paddler_tui.server.agent.engine.model import ModelContext
    from paddler_tui.server.agent.output.token_classifier import Classified, Output

logger = logging.getLogger(__name__)

_utf8_decoder = codecs.getincrementaldecoder("utf-8")

# A slot's sequence is saved in host memory before admission discards at least this many of its
# tokens. A save copies the whole sequence and takes its full size from the budget, so saving
# one that the slot mostly keeps (a conversation's next turn that rewrites its last few tokens)
# would fill the cache with near copies to spare a short decode; and a restore of fewer tokens
# than this saves less than one small batch. 32 is about a chat template's preamble.
MIN_SAVED_TOKENS = 32


@dataclass(eq=False)
class _Slot:
    """One llama sequence id and the tokens its KV cache holds at positions 0, 1, ..."""

    seq_id: int
    held: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: int = 0


@dataclass(eq=False)
class _Running:
    job: GenerationJob
    sink: EventSink
    slot: _Slot
    sampler: SamplerChain
    prompt: list[int]
    cached: int  # prompt prefix reused from the slot's previous job
    ingested: int  # prompt tokens already in the KV cache
    generated: int = 0
    counted: int = 0  # generated tokens that count toward max_tokens
    pending: int | None = None  # sampled and emitted, not yet decoded
    stop_requested: bool = False
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: _utf8_decoder("replace"))


@dataclass(frozen=True, slots=True)
class _Contribution:
    running: _Running
    tokens: Sequence[int]
    output_index: int | None  # batch index whose logits get sampled


def _holding_most(free: list[_Slot], prompt: list[int]) -> _Slot:
    """The slot already holding the longest prefix of ``prompt``; ties go to the least recently
    used slot, so fresher caches survive longer."""
    return max(free, key=lambda s: (common_prefix_length(s.held, prompt), -s.last_used))


def _classify(job: GenerationJob, piece: str) -> Classified | None:
    if job.classifier is None:
        return None
    try:
        return job.classifier.feed(piece)
    except Exception:
        # A broken classifier must not take the other slots down with it.
        logger.exception("token classifier failed for %s", job.job_id)
        return None


def _last_outputs(job: GenerationJob) -> tuple[Output, ...]:
    """What the classifier still holds once the job has generated its last token."""
    if job.classifier is None:
        return ()
    try:
        return job.classifier.finish()
    except Exception:
        logger.exception("token classifier failed for %s", job.job_id)
        return ()


class Scheduler:
    def __init__(self, model: ModelContext, *, release: Callable[[], None]) -> None:
        self._model = model
        self._release = release  # called once per job as it ends, before its terminal event
        self._events: list[tuple[EventSink, EngineEvent]] = []
        self._slots = [_Slot(seq_id) for seq_id in range(model.n_seq_max)]
        self._running: list[_Running] = []  # in admission order
        self._batch = DecodeBatch(model.n_batch, sequences_per_token=model.n_seq_max)
        self._clock = count(1)
        self._embedder = Embedder(
            model, self._batch, emit=self._emit, end=self._end, evict_slots=self._evict_slots
        )
        # The states saved from this engine's slots: they are only valid in its context, so
        # they end with it (a reload starts empty).
        settings = model.settings
        self._saved = PromptCache(settings.prompt_cache_ram if settings.reuse_prompt_cache else 0)
        # Read from other threads: replaced whole, never changed in place.
        self.prompt_cache_usage = PromptCacheUsage(0, 0, self._saved.budget)
        logger.info("prompt cache in host memory: %s", describe_budget(self._saved.budget))

    @property
    def has_work(self) -> bool:
        return bool(self._running) or self._embedder.has_work

    def take_events(self) -> list[tuple[EventSink, EngineEvent]]:
        """The events since the last call, in order, each with its job's sink."""
        events, self._events = self._events, []
        return events

    # Commands.

    def admit(self, job: Job, sink: EventSink) -> None:
        if isinstance(job, EmbeddingJob):
            self._embedder.admit(job, sink, generating=bool(self._running))
        else:
            self._admit_generation(job, sink)

    def _admit_generation(self, job: GenerationJob, sink: EventSink) -> None:
        prompt = list(job.prompt_tokens)
        if job.max_tokens <= 0:
            finished = JobFinished(job.job_id, "max_tokens", len(prompt), 0, 0, _last_outputs(job))
            self._end(sink, finished)
            return
        if not prompt:
            self._end(sink, JobFailed(job.job_id, "internal", "the prompt is empty"))
            return
        free = [slot for slot in self._slots if not slot.busy]
        if not free:
            self._end(sink, JobFailed(job.job_id, "sampler", NO_FREE_SLOT_MESSAGE))
            return
        try:
            sampler = SamplerChain(self._model, job.sampling, job.grammar)
        except GrammarInitError as error:
            self._end(sink, JobFailed(job.job_id, "grammar_init", str(error)))
            return
        slot = self._slot_for(prompt, free)
        # The last prompt token is always decoded again so that its logits exist.
        reused = min(common_prefix_length(slot.held, prompt), len(prompt) - 1)
        if not self._model.settings.reuse_prompt_cache:
            reused = 0
        reused = self._truncate(slot, reused)
        slot.busy = True
        slot.last_used = next(self._clock)
        self._running.append(
            _Running(job, sink, slot, sampler, prompt, cached=reused, ingested=reused)
        )

    def reject(self, job: Job, sink: EventSink, message: str) -> None:
        """End a job that was never admitted."""
        self._end(sink, JobFailed(job.job_id, "internal", message))

    def request_stop(self, job_id: str) -> None:
        for running in self._running:
            if running.job.job_id == job_id:
                running.stop_requested = True
        self._embedder.request_stop(job_id)

    def stop_all(self) -> None:
        for running in list(self._running):
            self._finish(running, "stopped")
        self._embedder.stop_all()

    def fail_all(self, message: str) -> None:
        for running in list(self._running):
            self._fail(running, "internal", message)
        self._embedder.fail_all(message)

    def free(self) -> None:
        self.fail_all("the engine shut down")
        self._batch.free()
        self._saved.clear()
        self._publish_usage()

    # The step.

    def step(self) -> None:
        for running in list(self._running):
            if running.stop_requested:
                self._finish(running, "stopped")
        if not self._running and self._embedder.has_work:
            self._embedder.step()
            return
        while self._running:
            contributions = self._build_batch()
            if not contributions:
                return
            status = self._batch.decode(self._model.ctx)
            if status == DECODE_OK:
                self._commit(contributions)
                return
            if status == DECODE_NO_KV_SLOT:
                # llama.cpp restored the cache; drop the longest sequence and try again.
                victim = max(self._running, key=lambda r: len(r.slot.held))
                self._fail(victim, "evicted", EVICTED_MESSAGE)
                continue
            for contribution in contributions:
                self._fail(contribution.running, "internal", f"llama_decode failed ({status})")
            return

    def _build_batch(self) -> list[_Contribution]:
        batch = self._batch
        batch.clear()
        limit = self._model.n_ctx_seq
        contributions: list[_Contribution] = []
        # Decode first: one pending token per generating job.
        for running in list(self._running):
            token = running.pending
            if token is None or batch.room == 0:
                continue
            position = len(running.slot.held)
            if position >= limit:
                self._fail(running, "evicted", EVICTED_MESSAGE)
                continue
            index = batch.add(token, position, running.slot.seq_id, logits=True)
            contributions.append(_Contribution(running, (token,), index))
        # Then prompt chunks, in admission order, while the batch has room.
        for running in list(self._running):
            if running.pending is not None or batch.room == 0:
                continue
            if len(running.prompt) > limit:
                self._fail(running, "evicted", EVICTED_MESSAGE)
                continue
            start = running.ingested
            end = min(len(running.prompt), start + batch.room)
            chunk = running.prompt[start:end]
            is_last = end == len(running.prompt)
            index = batch.add_run(chunk, start, running.slot.seq_id, last_logits=is_last)
            contributions.append(_Contribution(running, chunk, index if is_last else None))
        return contributions

    def _commit(self, contributions: list[_Contribution]) -> None:
        for contribution in contributions:
            running = contribution.running
            running.slot.held.extend(contribution.tokens)
            if running.pending is not None:
                running.pending = None
            else:
                running.ingested += len(contribution.tokens)
            if contribution.output_index is not None:
                self._sample(running, contribution.output_index)

    def _sample(self, running: _Running, output_index: int) -> None:
        model, job = self._model, running.job
        try:
            token = running.sampler.sample(model.ctx, output_index)
        except CandidatesEliminatedError as error:
            self._fail(running, "sampler", str(error))
            return
        except Exception as error:
            logger.exception("sampling failed for %s", job.job_id)
            self._fail(running, "sampler", f"sampling failed: {error}")
            return
        if model.is_eog(token):
            self._finish(running, "eog")
            return
        running.generated += 1
        piece = running.decoder.decode(model.token_bytes(token))
        classified = _classify(job, piece)
        # Tool-call tokens do not use up max_tokens, as in Paddler.
        if classified is None or classified.kind != "tool_call":
            running.counted += 1
        self._emit(running.sink, TokenSampled(job.job_id, token, piece, classified))
        if running.counted >= job.max_tokens:
            self._finish(running, "max_tokens")
        else:
            running.pending = token

    # The prompt cache: what slots hold, and the states saved in host memory.

    def _slot_for(self, prompt: list[int], free: list[_Slot]) -> _Slot:
        """The free slot to run ``prompt`` in, holding the longest prefix of it that the slots
        or the saved states offer."""
        slot = _holding_most(free, prompt)
        usable = len(prompt) - 1
        saved = self._saved.longest_prefix(prompt)
        if saved is None or min(saved.shared, usable) <= min(
            common_prefix_length(slot.held, prompt), usable
        ):
            return slot
        # A saved state holds more: restore it into the free slot holding the least of this
        # prompt (an empty one first, then the least recently used), once that slot's sequence
        # is saved in turn.
        target = min(
            free, key=lambda s: (common_prefix_length(s.held, prompt), bool(s.held), s.last_used)
        )
        self._save(target)
        if self._restore(target, saved.state):
            return target
        return _holding_most(free, prompt)

    def _truncate(self, slot: _Slot, keep: int) -> int:
        """Drop what ``slot`` holds after ``keep`` tokens, saving it first if that discards a
        meaningful part; returns the tokens kept."""
        if keep >= len(slot.held):
            return keep
        if len(slot.held) - keep >= MIN_SAVED_TOKENS:
            self._save(slot)
        if not self._model.clear_sequence(slot.seq_id, keep):
            self._model.clear_sequence(slot.seq_id)  # partial removal unsupported (recurrent)
            keep = 0
        del slot.held[keep:]
        return keep

    def _save(self, slot: _Slot) -> None:
        """Keep the sequence ``slot`` holds in host memory, unless it is short or kept already."""
        held = slot.held
        if len(held) < MIN_SAVED_TOKENS or not self._saved.wants(held):
            return
        started = time.perf_counter()
        data = self._model.save_sequence(slot.seq_id)
        if data is None:
            logger.warning("prompt cache: llama.cpp could not save slot %d", slot.seq_id)
            return
        if self._saved.add(held, data):
            logger.debug(
                "prompt cache: saved slot %d, %d tokens (%s) in %.1f ms; %d states, %s",
                slot.seq_id,
                len(held),
                describe_size(len(data)),
                (time.perf_counter() - started) * 1000,
                len(self._saved),
                describe_size(self._saved.size),
            )
        self._publish_usage()

    def _restore(self, slot: _Slot, state: SavedState) -> bool:
        """Make ``slot`` hold a saved state; False if llama.cpp refuses it (the slot is then
        empty, and the state dropped)."""
        started = time.perf_counter()
        if not self._model.restore_sequence(slot.seq_id, state.data):
            slot.held.clear()
            self._saved.discard(state, "llama.cpp could not restore it")
            self._publish_usage()
            logger.warning(
                "prompt cache: llama.cpp could not restore %d tokens (%s) into slot %d; "
                "decoding the prompt instead",
                len(state.tokens),
                describe_size(state.size),
                slot.seq_id,
            )
            return False
        slot.held = list(state.tokens)
        self._saved.touch(state)
        logger.debug(
            "prompt cache: restored %d tokens (%s) into slot %d in %.1f ms",
            len(state.tokens),
            describe_size(state.size),
            slot.seq_id,
            (time.perf_counter() - started) * 1000,
        )
        return True

    def _evict_slots(self) -> None:
        """The KV cache is about to be cleared: save what the slots hold, then forget it."""
        for slot in self._slots:
            self._save(slot)
            slot.held.clear()

    def _publish_usage(self) -> None:
        saved = self._saved
        self.prompt_cache_usage = PromptCacheUsage(len(saved), saved.size, saved.budget)

    # Endings.

    def _finish(self, running: _Running, reason: FinishReason) -> None:
        """End normally; the slot keeps its KV (and ``held``) for the prompt cache."""
        self._detach(running)
        job = running.job
        event = JobFinished(
            job.job_id,
            reason,
            len(running.prompt),
            running.cached,
            running.generated,
            _last_outputs(job),
        )
        self._end(running.sink, event)

    def _fail(self, running: _Running, kind: FailureKind, message: str) -> None:
        self._detach(running)
        self._model.clear_sequence(running.slot.seq_id)
        running.slot.held.clear()
        self._end(running.sink, JobFailed(running.job.job_id, kind, message))

    def _detach(self, running: _Running) -> None:
        self._running.remove(running)
        running.slot.busy = False
        running.sampler.free()

    def _end(self, sink: EventSink, event: EngineEvent) -> None:
        self._release()
        self._emit(sink, event)

    def _emit(self, sink: EventSink, event: EngineEvent) -> None:
        self._events.append((sink, event))
