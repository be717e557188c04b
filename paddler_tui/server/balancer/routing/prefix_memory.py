"""What one agent served recently: a bounded LRU of prefix-chain hashes."""

from __future__ import annotations

from collections import OrderedDict

from paddler_tui.server.balancer.routing.prefix_chain import PrefixChain

# Hashes kept per agent: a message or a raw-prompt chunk each, so a few hundred conversations,
# more than an agent's slots (and a modest RAM prompt cache) keep at once.
DEFAULT_CAPACITY = 4096


class PrefixMemory:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._hashes: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._hashes)

    def record(self, chain: PrefixChain) -> None:
        """The agent was sent a request with this chain: its whole prefix is now recent."""
        hashes = self._hashes
        for link in chain:
            hashes[link] = None
            hashes.move_to_end(link)
        while len(hashes) > self.capacity:
            hashes.popitem(last=False)

    def match_depth(self, chain: PrefixChain) -> int:
        """How many leading pieces of the chain this agent served: the longest ``i`` whose hash
        is held. The chain is rolling, so a hit at ``i`` vouches for the whole prefix, even when
        the LRU has since dropped the shorter prefixes' hashes (recorded earlier, so older)."""
        hashes = self._hashes
        for depth in range(len(chain), 0, -1):
            if chain[depth - 1] in hashes:
                return depth
        return 0

    def clear(self) -> None:
        self._hashes.clear()
