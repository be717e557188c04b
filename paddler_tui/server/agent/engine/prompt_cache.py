"""Saved sequence states in host memory: the prompt cache behind the slots.

A slot's KV cache remembers one sequence. When the scheduler takes a slot for a prompt it does
not hold, it saves the sequence the slot held (llama.cpp's state of that one sequence, as bytes)
here, and restores a saved state into a slot when a later prompt shares a longer prefix with it
than with any free slot: a conversation whose slot went to others still finds its cache, as with
llama-server's ``--cache-ram``. This module only keeps the states; the scheduler saves and
restores them, on the engine thread.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paddler_tui.server.agent.engine.token_prefixes import common_prefix_length
from paddler_tui.server.agent.engine.types import MIB, UNLIMITED_PROMPT_CACHE

if TYPE_CHECKING:
    from collections.abc import Sequence

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False, slots=True)
class SavedState:
    """The KV cache of a sequence that held ``tokens`` at positions 0, 1, ..."""

    tokens: tuple[int, ...]
    # What llama_state_seq_get_data wrote; a bytearray so a restore can hand llama.cpp the
    # buffer itself (ctypes maps only writable buffers without a copy). Never changed.
    data: bytearray

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True, slots=True)
class Match:
    state: SavedState
    shared: int  # leading tokens the state and the prompt have in common


def describe_size(size: int) -> str:
    return f"{size / MIB:.1f} MiB"


def describe_budget(budget: int) -> str:
    if budget == UNLIMITED_PROMPT_CACHE:
        return "no limit"
    return "off" if budget == 0 else describe_size(budget)


class PromptCache:
    """Saved states, least recently used first, in at most ``budget`` bytes.

    A budget of ``UNLIMITED_PROMPT_CACHE`` keeps everything, 0 keeps nothing (the cache is
    off). No state's tokens are a prefix of another's: saving a longer run of a sequence
    supersedes the shorter one, which restoring the longer one and truncating it gives back.
    """

    def __init__(self, budget: int) -> None:
        if budget < UNLIMITED_PROMPT_CACHE:
            raise ValueError(f"a prompt cache budget is -1 (unlimited), 0 (off) or bytes: {budget}")
        self.budget = budget
        self.size = 0  # bytes of every state kept
        self._states: OrderedDict[tuple[int, ...], SavedState] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.budget != 0

    def __len__(self) -> int:
        return len(self._states)

    def states(self) -> list[SavedState]:
        """Every state kept, least recently used first."""
        return list(self._states.values())

    def longest_prefix(self, tokens: Sequence[int]) -> Match | None:
        """The state sharing the most leading tokens with ``tokens`` (ties: the most recently
        used), or None if none shares any."""
        best: Match | None = None
        for state in reversed(self._states.values()):
            shared = common_prefix_length(state.tokens, tokens)
            if shared > (best.shared if best is not None else 0):
                best = Match(state, shared)
        return best

    def wants(self, tokens: Sequence[int]) -> bool:
        """Whether saving ``tokens`` would keep something the cache does not have."""
        return self.enabled and not self._holds(tuple(tokens))

    def add(self, tokens: Sequence[int], data: bytearray) -> bool:
        """Keep the state of a sequence holding ``tokens``, evicting the least recently used
        states until it fits; False if it is not kept (off, already held, or over the budget)."""
        key = tuple(tokens)
        if not self.wants(key):
            return False
        size = len(data)
        bounded = self.budget != UNLIMITED_PROMPT_CACHE
        if bounded and size > self.budget:
            logger.debug(
                "prompt cache: %d tokens (%s) exceed the whole budget (%s); not kept",
                len(key),
                describe_size(size),
                describe_size(self.budget),
            )
            return False
        for superseded in [held for held in self._states if key[: len(held)] == held]:
            self._remove(superseded, "superseded by a longer run of its sequence")
        while bounded and self.size + size > self.budget:
            self._remove(next(iter(self._states)), "evicted, least recently used")
        self._states[key] = SavedState(key, data)
        self.size += size
        return True

    def touch(self, state: SavedState) -> None:
        """Mark ``state`` as just used, the last to be evicted."""
        if state.tokens in self._states:
            self._states.move_to_end(state.tokens)

    def discard(self, state: SavedState, reason: str) -> None:
        if self._states.get(state.tokens) is state:
            self._remove(state.tokens, reason)

    def clear(self) -> None:
        self._states.clear()
        self.size = 0

    def _holds(self, key: tuple[int, ...]) -> bool:
        length = len(key)
        return any(held[:length] == key for held in self._states if len(held) >= length)

    def _remove(self, key: tuple[int, ...], reason: str) -> None:
        state = self._states.pop(key)
        self.size -= state.size
        logger.debug(
            "prompt cache: dropped %d tokens (%s), %s", len(key), describe_size(state.size), reason
        )
