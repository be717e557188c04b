"""Common prefixes of token sequences: prompt cache reuse and shared-prefix embedding batches.

In a causal model a token's hidden state and KV cells depend only on the tokens before it, so
sequences that start alike can share those tokens: a decode computes each distinct prefix token
once, tagged with every sequence that contains it, and each sequence's pooled embedding is still
exactly its own (llama.cpp pools a multi-sequence token into each of its sequences).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


class SharedToken(NamedTuple):
    token: int
    pos: int
    sequences: tuple[int, ...]  # indices of the sequences that contain this token at ``pos``


def common_prefix_length(left: Sequence[int], right: Sequence[int]) -> int:
    length = 0
    for a, b in zip(left, right, strict=False):
        if a != b:
            break
        length += 1
    return length


def longest_shared_prefix(tokens: Sequence[int], others: Sequence[Sequence[int]]) -> int:
    """How many leading tokens of ``tokens`` some sequence of ``others`` already holds."""
    return max((common_prefix_length(tokens, other) for other in others), default=0)


def shared_tokens(sequences: Sequence[Sequence[int]]) -> Iterator[SharedToken]:
    """Every distinct (prefix, position) of the sequences once, with the sequences sharing it.

    A token belongs to the first sequence that has it; later sequences skip their prefix that
    an earlier one holds. Yields ``sum(len) - sum(longest prefix held by an earlier one)`` tokens.
    """
    for index, tokens in enumerate(sequences):
        start = longest_shared_prefix(tokens, sequences[:index])
        later = [
            (other, common_prefix_length(tokens, sequences[other]))
            for other in range(index + 1, len(sequences))
        ]
        for pos in range(start, len(tokens)):
            sharers = (index, *(other for other, shared in later if shared > pos))
            yield SharedToken(tokens[pos], pos, sharers)
