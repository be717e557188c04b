"""Plain data passed between the asyncio side of the agent and the engine thread.

This module must not import llama_cpp: the asyncio side imports only this, and the engine
(``engine.py``) is loaded lazily when a model is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from paddler_tui.server.agent.output.token_classifier import Classified, Output

FinishReason = Literal["eog", "max_tokens", "stopped"]
FailureKind = Literal[
    "evicted",
    "sampler",
    "grammar_init",
    "internal",
    "embeddings_disabled",
    "generation_active",
]
logger = logging.getLogger(__name__)

LoadErrorKind = Literal["model_cannot_be_loaded", "slot_cannot_start"]

# Paddler's error texts (§9.2), sent verbatim as SamplerError payloads.
NO_FREE_SLOT_MESSAGE = "no available sequence slots, all slots are busy"
EVICTED_MESSAGE = "Request evicted due to KV cache pressure"
CANDIDATES_ELIMINATED_MESSAGE = "all token candidates were eliminated during sampling"

MIB = 1024 * 1024
UNLIMITED_PROMPT_CACHE = -1
DEFAULT_PROMPT_CACHE_RAM_MIB = 8192  # llama-server's --cache-ram default


def prompt_cache_bytes(mib: int) -> int:
    """``--prompt-cache-ram`` (MiB, -1 for no limit) as EngineSettings.prompt_cache_ram."""
    return mib if mib == UNLIMITED_PROMPT_CACHE else mib * MIB


@dataclass(frozen=True, kw_only=True)
class EngineSettings:
    """How to load a model and build its one shared llama context."""

    model_path: str
    slots: int
    context_size: int = 8192
    n_batch: int = 2048
    # None: Paddler's rule, max(2, usable CPUs // 2), for both generation and batch threads.
    n_threads: int | None = None
    n_gpu_layers: int = 0
    # llama.cpp's extra buffer types (weight repacking); off is llama-server's --no-repack.
    # None: this host's cached verdict (extra_buffers.py), probed once in a child if need be,
    # so that no engine repacks where repacking crashes.
    use_extra_buffers: bool | None = None
    k_cache_dtype: str = "Q8_0"  # a Paddler KvCacheDtype name
    v_cache_dtype: str = "Q8_0"
    enable_embeddings: bool = False
    pooling_type: str = "Last"  # a Paddler PoolingType name
    # Off only to measure what reuse saves (bench/prompt_cache.py): then no slot reuses its KV
    # cache and nothing is saved in host memory. The agent always reuses.
    reuse_prompt_cache: bool = True
    # Bytes of host memory for sequence states saved when their slot is taken
    # (prompt_cache.py): UNLIMITED_PROMPT_CACHE for no bound, 0 for none.
    prompt_cache_ram: int = prompt_cache_bytes(DEFAULT_PROMPT_CACHE_RAM_MIB)


@dataclass(frozen=True, slots=True)
class PromptCacheUsage:
    """What the prompt cache in host memory keeps, as its engine last published it."""

    states: int
    size: int  # bytes
    budget: int  # bytes; UNLIMITED_PROMPT_CACHE or 0 (off) as in EngineSettings


@dataclass(frozen=True, kw_only=True)
class SamplingSettings:
    temperature: float
    top_k: int
    top_p: float
    min_p: float
    penalty_last_n: int  # -1: the whole sequence context; 0: penalties off
    penalty_repeat: float
    penalty_frequency: float
    penalty_presence: float
    seed: int | None = None  # None: a random seed


class TokenMeter(Protocol):
    """Classifies a job's generated text token by token (an output TokenClassifier)."""

    def feed(self, piece: str) -> Classified: ...

    def finish(self) -> tuple[Output, ...]: ...


@dataclass(frozen=True, kw_only=True)
class GenerationJob:
    job_id: str
    prompt_tokens: Sequence[int]
    max_tokens: int
    sampling: SamplingSettings
    grammar: tuple[str, str] | None = None  # (GBNF text, root rule name)
    # Fed each sampled token's text on the compute thread, in order; a token it classifies as
    # a tool call does not count toward max_tokens. Owned by the engine: only it calls the
    # meter, and what the meter says travels in the job's events.
    classifier: TokenMeter | None = None


@dataclass(frozen=True, kw_only=True)
class EmbeddingJob:
    job_id: str
    documents: Sequence[tuple[str, str]]  # (document id, content)


@dataclass(frozen=True, slots=True)
class TokenSampled:
    """One generated token; ``piece`` is always whole characters (split UTF-8 is held back)."""

    job_id: str
    token_id: int
    piece: str
    classified: Classified | None = None  # None for a job without a classifier


@dataclass(frozen=True, slots=True)
class JobFinished:
    job_id: str
    reason: FinishReason
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int
    outputs: tuple[Output, ...] = ()  # the classifier's last outputs (held text, an open call)


@dataclass(frozen=True, slots=True)
class DocumentEmbedded:
    """The pooled, not yet normalized, embedding of one document."""

    job_id: str
    document_id: str
    vector: list[float]


@dataclass(frozen=True, slots=True)
class DocumentTooLong:
    """A document longer than one batch; it is skipped and the others are embedded."""

    job_id: str
    document_id: str
    tokens: int
    n_batch: int


@dataclass(frozen=True, slots=True)
class EmbeddingsFinished:
    job_id: str
    embedded: int  # documents embedded (fewer than planned if stopped)


@dataclass(frozen=True, slots=True)
class JobFailed:
    job_id: str
    kind: FailureKind
    message: str


EngineEvent: TypeAlias = (
    TokenSampled | JobFinished | DocumentEmbedded | DocumentTooLong | EmbeddingsFinished | JobFailed
)
Job: TypeAlias = GenerationJob | EmbeddingJob
EventSink: TypeAlias = Callable[[EngineEvent], None]


class EngineLoadError(Exception):
    """The model or its context could not be created."""

    def __init__(self, kind: LoadErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: LoadErrorKind = kind
        self.message = message


class EngineClosedError(RuntimeError):
    """The engine was closed (or its thread died); its model is gone."""


class GrammarConversionError(ValueError):
    """A JSON Schema that cannot be turned into a grammar; the message says why."""


# One scheduler step's events, in order, each with the sink of the job it belongs to.
Delivery: TypeAlias = list[tuple[EventSink, EngineEvent]]
Deliver: TypeAlias = Callable[[Delivery], None]


def deliver_in_place(delivery: Delivery) -> None:
    """Call each sink in turn, on the calling thread."""
    for sink, event in delivery:
        try:
            sink(event)
        except Exception:
            # A broken consumer must not take the other slots down with it.
            logger.exception("engine event sink failed for %s", event.job_id)
