"""A reusable ``llama_batch`` that mixes tokens of many sequences in one decode."""

from __future__ import annotations

from typing import TYPE_CHECKING

import llama_cpp

if TYPE_CHECKING:
    from collections.abc import Sequence

    from paddler_tui.server.agent.engine.model import Pointer

# llama_decode statuses (llama.h).
DECODE_OK = 0
DECODE_NO_KV_SLOT = 1


class DecodeBatch:
    """Fixed capacity, mostly one sequence id per token; filled per step, then decoded."""

    def __init__(self, capacity: int, *, sequences_per_token: int = 1) -> None:
        self.capacity = capacity
        self._batch: Pointer = llama_cpp.llama_batch_init(capacity, 0, sequences_per_token)
        # Pointer objects fetched once: each ctypes field access builds a new object.
        self._token = self._batch.token
        self._pos = self._batch.pos
        self._logits = self._batch.logits
        self._seq_ids = [self._batch.seq_id[i] for i in range(capacity)]
        n_seq_id = self._batch.n_seq_id
        for index in range(capacity):
            n_seq_id[index] = 1
        self._n_seq_id = n_seq_id
        self._shared: list[int] = []  # indices whose token has several sequence ids
        self.size = 0

    def clear(self) -> None:
        # The generation path only ever writes seq_id[0], so shared entries are reset here.
        for index in self._shared:
            self._n_seq_id[index] = 1
        self._shared.clear()
        self.size = 0

    @property
    def room(self) -> int:
        return self.capacity - self.size

    def add(self, token: int, pos: int, seq_id: int, *, logits: bool) -> int:
        """Append one token; returns its index in the batch (the logits index if requested)."""
        index = self.size
        self._token[index] = token
        self._pos[index] = pos
        self._seq_ids[index][0] = seq_id
        self._logits[index] = logits
        self.size = index + 1
        return index

    def add_run(
        self, tokens: Sequence[int], start_pos: int, seq_id: int, *, last_logits: bool
    ) -> int:
        """Append consecutive tokens of one sequence; returns the index of the last one."""
        token, pos, logits, seq_ids = self._token, self._pos, self._logits, self._seq_ids
        index = self.size
        for offset, value in enumerate(tokens):
            token[index] = value
            pos[index] = start_pos + offset
            seq_ids[index][0] = seq_id
            logits[index] = False
            index += 1
        last = index - 1
        logits[last] = last_logits
        self.size = index
        return last

    def add_shared(self, token: int, pos: int, seq_ids: Sequence[int]) -> None:
        """Append one output token that belongs to every sequence in ``seq_ids`` (for pooling)."""
        index = self.size
        self._token[index] = token
        self._pos[index] = pos
        slots = self._seq_ids[index]
        for offset, seq_id in enumerate(seq_ids):
            slots[offset] = seq_id
        if len(seq_ids) != 1:
            self._n_seq_id[index] = len(seq_ids)
            self._shared.append(index)
        self._logits[index] = True
        self.size = index + 1

    def decode(self, ctx: Pointer) -> int:
        self._batch.n_tokens = self.size
        return int(llama_cpp.llama_decode(ctx, self._batch))

    def free(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
