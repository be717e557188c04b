"""One llama.cpp sampler chain per running job, so penalty and grammar state never mix.

A grammar is never left to ``llama_sampler_sample``: when the grammar eliminates every
candidate, that samples a token the grammar then refuses to accept, and llama.cpp answers with
an uncaught C++ exception that aborts the process. Here the grammar masks the candidates first,
the rest of the chain samples among the survivors only, and no survivor means a sampler error.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any

import llama_cpp
import numpy as np

from paddler_tui.server.agent.engine.grammar_guard import grammar_shape_error
from paddler_tui.server.agent.engine.types import CANDIDATES_ELIMINATED_MESSAGE

if TYPE_CHECKING:
    from paddler_tui.server.agent.engine.model import ModelContext, Pointer
    from paddler_tui.server.agent.engine.types import SamplingSettings

RANDOM_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random one
_GRAMMAR_FAILED = "Failed to initialize grammar sampler"
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
assert _TOKEN_DATA.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)


class GrammarInitError(Exception):
    """The grammar was refused; the message is the GrammarInitializationFailed text."""


class CandidatesEliminatedError(Exception):
    def __init__(self) -> None:
        super().__init__(CANDIDATES_ELIMINATED_MESSAGE)


class SamplerChain:
    """Paddler's chain: grammar, penalties, top_k, top_p, min_p, temp, dist.

    A temperature of 0 or below samples greedily (the argmax) after the penalties; the
    truncating samplers cannot change the argmax, so they are left out.
    """

    def __init__(
        self,
        model: ModelContext,
        sampling: SamplingSettings,
        grammar: tuple[str, str] | None = None,
    ) -> None:
        self._n_vocab = model.n_vocab
        self._grammar: Pointer = None
        self._chain: Pointer = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        try:
            if grammar is not None:
                self._grammar = _grammar_sampler(model, *grammar)
            last_n = sampling.penalty_last_n
            if last_n < 0:
                # -1 means the whole context, which llama.cpp itself would clamp to 0 (off).
                last_n = model.n_ctx_seq
            self._add(
                llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab,
                    last_n,
                    sampling.penalty_repeat,
                    sampling.penalty_frequency,
                    sampling.penalty_presence,
                )
            )
            if sampling.temperature <= 0:
                self._add(llama_cpp.llama_sampler_init_greedy())
            else:
                # min_keep 1: llama.cpp always keeps one candidate anyway; 1 states it.
                self._add(llama_cpp.llama_sampler_init_top_k(sampling.top_k))
                self._add(llama_cpp.llama_sampler_init_top_p(sampling.top_p, 1))
                self._add(llama_cpp.llama_sampler_init_min_p(sampling.min_p, 1))
                self._add(llama_cpp.llama_sampler_init_temp(sampling.temperature))
                seed = RANDOM_SEED if sampling.seed is None else sampling.seed & 0xFFFFFFFF
                self._add(llama_cpp.llama_sampler_init_dist(seed))
        except BaseException:
            self.free()
            raise

    def _add(self, sampler: Pointer) -> None:
        # The chain owns what is added to it and frees it with itself.
        llama_cpp.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: Pointer, output_index: int) -> int:
        """Sample from the logits of batch position ``output_index`` and accept the token.

        Raises CandidatesEliminatedError when the grammar allows no token at all.
        """
        if self._grammar is None:
            return int(llama_cpp.llama_sampler_sample(self._chain, ctx, output_index))
        logits = llama_cpp.llama_get_logits_ith(ctx, output_index)
        candidates = np.empty(self._n_vocab, dtype=_TOKEN_DATA)
        candidates["id"] = np.arange(self._n_vocab, dtype=np.int32)
        candidates["logit"] = np.ctypeslib.as_array(logits, shape=(self._n_vocab,))
        candidates["p"] = 0.0
        _apply(self._grammar, candidates)
        allowed = candidates[candidates["logit"] > -np.inf]
        if allowed.size == 0:
            raise CandidatesEliminatedError
        token = _apply(self._chain, allowed)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain, token)
        return token

    def free(self) -> None:
        for sampler in (self._chain, self._grammar):
            if sampler is not None:
                llama_cpp.llama_sampler_free(sampler)
        self._chain = self._grammar = None


def _apply(sampler: Pointer, candidates: np.ndarray[Any, np.dtype[Any]]) -> int:
    """Run ``sampler`` over ``candidates`` in place; the selected token id (-1: none)."""
    array = llama_cpp.llama_token_data_array(
        data=candidates.ctypes.data_as(llama_cpp.llama_token_data_p),
        size=candidates.size,
        selected=-1,
        sorted=False,
    )
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    # Samplers may shrink ``size`` and reorder, never reallocate; read through the struct.
    return -1 if array.selected < 0 else int(array.data[array.selected].id)


def _grammar_sampler(model: ModelContext, text: str, root: str) -> Pointer:
    problem = grammar_shape_error(text)
    if problem is not None:
        raise GrammarInitError(f"{_GRAMMAR_FAILED}: {problem}")
    sampler = llama_cpp.llama_sampler_init_grammar(
        model.vocab, text.encode("utf-8"), root.encode("utf-8")
    )
    if not sampler:
        # llama.cpp prints the reason to stderr and returns NULL.
        raise GrammarInitError(
            f"{_GRAMMAR_FAILED}: llama.cpp rejected the grammar (a syntax error, an undefined "
            f"or left-recursive rule, or no root rule {root!r})"
        )
    return sampler
