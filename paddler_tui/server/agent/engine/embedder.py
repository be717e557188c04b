"""Embedding jobs on the engine thread: one packed batch of documents per scheduler step.

Each distinct document is one sequence; documents are packed greedily into batches of at most
``n_batch`` tokens and ``slots`` sequences, so each decode fills the batch. Repeated documents
are embedded once: that saves the work, and makes their vectors bit-identical (the same text in
two sequences of one batch may differ in the last bits). With a causal model the documents are
taken in token order and a batch decodes the prefix its documents share only once (see
``token_prefixes``): templated documents or ones with a common instruction prefix cost only
their differing tails. So documents are embedded, and streamed, in that order, not the input's.
A batch needs the whole KV cache (it clears it), so embeddings only run while no generation job
does, and a stop takes effect between batches.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paddler_tui.server.agent.engine.batch import DECODE_OK
from paddler_tui.server.agent.engine.token_prefixes import longest_shared_prefix, shared_tokens
from paddler_tui.server.agent.engine.types import (
    DocumentEmbedded,
    DocumentTooLong,
    EmbeddingJob,
    EmbeddingsFinished,
    JobFailed,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from paddler_tui.server.agent.engine.batch import DecodeBatch
    from paddler_tui.server.agent.engine.model import ModelContext
    from paddler_tui.server.agent.engine.types import EngineEvent, EventSink

    Deliver = Callable[[EventSink, EngineEvent], None]


@dataclass
class _Document:
    ids: list[str]  # every document of the job with these tokens
    tokens: list[int]


@dataclass(eq=False)
class _Run:
    job: EmbeddingJob
    sink: EventSink
    documents: deque[_Document]  # not embedded yet, in order
    embedded: int = 0
    stop_requested: bool = False


class Embedder:
    def __init__(
        self,
        model: ModelContext,
        batch: DecodeBatch,
        *,
        emit: Deliver,
        end: Deliver,
        evict_slots: Callable[[], None],
    ) -> None:
        self._model = model
        self._batch = batch
        self._emit = emit  # an event that is not the job's last
        self._end = end  # the job's terminal event
        self._evict_slots = evict_slots  # before the KV cache is cleared under the slots
        self._runs: deque[_Run] = deque()

    @property
    def has_work(self) -> bool:
        return bool(self._runs)

    def admit(self, job: EmbeddingJob, sink: EventSink, *, generating: bool) -> None:
        model = self._model
        if not model.settings.enable_embeddings:
            self._end(sink, JobFailed(job.job_id, "embeddings_disabled", "embeddings are off"))
            return
        if generating:
            self._end(sink, JobFailed(job.job_id, "generation_active", "tokens are generating"))
            return
        tokenized = [
            (document_id, model.tokenize(content, add_bos=True, parse_special=False))
            for document_id, content in job.documents
        ]
        empty = next((document_id for document_id, tokens in tokenized if not tokens), None)
        if empty is not None:
            message = f"document {empty!r} has no tokens to embed"
            self._end(sink, JobFailed(job.job_id, "internal", message))
            return
        # A document must fit one batch, and the KV stream of one sequence.
        limit = min(model.n_batch, model.n_ctx_seq)
        run = _Run(job, sink, deque())
        distinct: dict[tuple[int, ...], _Document] = {}
        for document_id, tokens in tokenized:
            if len(tokens) > limit:
                self._emit(sink, DocumentTooLong(job.job_id, document_id, len(tokens), limit))
            elif (known := distinct.get(tuple(tokens))) is not None:
                known.ids.append(document_id)
            else:
                distinct[tuple(tokens)] = document = _Document([document_id], tokens)
                run.documents.append(document)
        if model.causal:
            run.documents = deque(sorted(run.documents, key=lambda document: document.tokens))
        self._runs.append(run)

    def request_stop(self, job_id: str) -> None:
        for run in self._runs:
            if run.job.job_id == job_id:
                run.stop_requested = True

    def stop_all(self) -> None:
        while self._runs:
            self._finish(self._runs[0])

    def fail_all(self, message: str) -> None:
        while self._runs:
            run = self._runs.popleft()
            self._end(run.sink, JobFailed(run.job.job_id, "internal", message))

    def step(self) -> None:
        """Embed the next batch of the oldest job, or end it."""
        run = self._runs[0]
        if run.stop_requested or not run.documents:
            self._finish(run)
            return
        taken = self._next_batch(run.documents)
        batch, model = self._batch, self._model
        batch.clear()
        for token, pos, seq_ids in self._layout(taken):
            batch.add_shared(token, pos, seq_ids)
        self._evict_slots()
        model.clear_memory()
        status = batch.decode(model.ctx)
        vectors = (
            [model.pooled_embedding(seq_id) for seq_id in range(len(taken))]
            if status == DECODE_OK
            else []
        )
        model.clear_memory()  # generation must find every sequence empty, as it believes
        if status != DECODE_OK:
            self._fail(run, f"llama_decode failed ({status})")
            return
        for document, vector in zip(taken, vectors, strict=True):
            if vector is None:
                self._fail(run, "the pooling type None gives no embedding per document")
                return
            for document_id in document.ids:
                self._emit(run.sink, DocumentEmbedded(run.job.job_id, document_id, vector))
                run.embedded += 1
        if not run.documents:
            self._finish(run)

    def _next_batch(self, documents: deque[_Document]) -> list[_Document]:
        taken: list[_Document] = []
        size = 0
        while documents and len(taken) < self._model.n_seq_max:
            tokens = documents[0].tokens
            cost = len(tokens) - self._shared_length(tokens, taken)
            if size + cost > self._model.n_batch:
                break
            size += cost
            taken.append(documents.popleft())
        return taken

    def _shared_length(self, tokens: list[int], taken: list[_Document]) -> int:
        if not self._model.causal:
            return 0
        return longest_shared_prefix(tokens, [document.tokens for document in taken])

    def _layout(self, taken: list[_Document]) -> Iterator[tuple[int, int, tuple[int, ...]]]:
        """The batch's tokens: shared prefixes once for a causal model, else each document."""
        if self._model.causal:
            yield from shared_tokens([document.tokens for document in taken])
            return
        for seq_id, document in enumerate(taken):
            for pos, token in enumerate(document.tokens):
                yield token, pos, (seq_id,)

    def _finish(self, run: _Run) -> None:
        self._runs.remove(run)
        self._end(run.sink, EmbeddingsFinished(run.job.job_id, run.embedded))

    def _fail(self, run: _Run, message: str) -> None:
        self._runs.remove(run)
        self._end(run.sink, JobFailed(run.job.job_id, "internal", message))
