"""Plain data passed between the asyncio side of the agent and the engine thread.

This module must not import llama_cpp: the asyncio side imports only this, and the engine
(``engine.py``) is loaded lazily when a model is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

FinishReason = Literal["eog", "max_tokens", "stopped"]
FailureKind = Literal[
    "evicted", "sampler", "grammar_syntax", "grammar_init", "grammar_rejected", "internal"
]
LoadErrorKind = Literal["model_cannot_be_loaded", "slot_cannot_start"]

# Paddler's error texts (§9.2), sent verbatim as SamplerError payloads.
NO_FREE_SLOT_MESSAGE = "no available sequence slots, all slots are busy"
EVICTED_MESSAGE = "Request evicted due to KV cache pressure"


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
    k_cache_dtype: str = "Q8_0"  # a Paddler KvCacheDtype name
    v_cache_dtype: str = "Q8_0"
    enable_embeddings: bool = False
    pooling_type: str = "Last"  # a Paddler PoolingType name


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


@dataclass(frozen=True, kw_only=True)
class GenerationJob:
    job_id: str
    prompt_tokens: Sequence[int]
    max_tokens: int
    sampling: SamplingSettings
    grammar: tuple[str, str] | None = None  # (GBNF text, root rule name)


@dataclass(frozen=True, slots=True)
class TokenSampled:
    """One generated token; ``piece`` is always whole characters (split UTF-8 is held back)."""

    job_id: str
    token_id: int
    piece: str


@dataclass(frozen=True, slots=True)
class JobFinished:
    job_id: str
    reason: FinishReason
    prompt_tokens: int
    cached_prompt_tokens: int
    generated_tokens: int


@dataclass(frozen=True, slots=True)
class JobFailed:
    job_id: str
    kind: FailureKind
    message: str


EngineEvent: TypeAlias = TokenSampled | JobFinished | JobFailed
EventSink: TypeAlias = Callable[[EngineEvent], None]


class EngineLoadError(Exception):
    """The model or its context could not be created."""

    def __init__(self, kind: LoadErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: LoadErrorKind = kind
        self.message = message


class EngineClosedError(RuntimeError):
    """The engine was closed (or its thread died); its model is gone."""
