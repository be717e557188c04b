"""One llama.cpp sampler chain per running job, so penalty and grammar state never mix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import llama_cpp

if TYPE_CHECKING:
    from paddler_tui.server.agent.engine_model import ModelContext, Pointer
    from paddler_tui.server.agent.engine_types import SamplingSettings

RANDOM_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random one


class SamplerInitError(Exception):
    def __init__(self, kind: Literal["grammar_syntax", "grammar_init"], message: str) -> None:
        super().__init__(message)
        self.kind: Literal["grammar_syntax", "grammar_init"] = kind
        self.message = message


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
        self._chain: Pointer = llama_cpp.llama_sampler_chain_init(
            llama_cpp.llama_sampler_chain_default_params()
        )
        try:
            if grammar is not None:
                self._add(_grammar_sampler(model, *grammar))
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
        """Sample from the logits of batch position ``output_index`` and accept the token."""
        return int(llama_cpp.llama_sampler_sample(self._chain, ctx, output_index))

    def free(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


def _grammar_sampler(model: ModelContext, text: str, root: str) -> Pointer:
    try:
        sampler = llama_cpp.llama_sampler_init_grammar(
            model.vocab, text.encode("utf-8"), root.encode("utf-8")
        )
    except Exception as error:
        raise SamplerInitError("grammar_init", f"{error}") from error
    if not sampler:
        # llama.cpp returns NULL when the GBNF does not parse (or lacks the root rule).
        raise SamplerInitError(
            "grammar_syntax", f"Failed to create grammar sampler: invalid grammar (root {root!r})"
        )
    return sampler
