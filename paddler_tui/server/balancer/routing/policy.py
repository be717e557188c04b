"""Which agent takes a request, or which one it waits for: the routing policy, without I/O.

An agent's load is its busy slots plus the buffered requests waiting for it. A request goes to
the agent holding the longest prefix of its prompt if that agent has a free slot and its load
exceeds the least loaded agent's by at most ``imbalance``; otherwise to the least loaded agent
with a free slot. When no slot is free anywhere, the request waits for that same prefix holder
(it is pinned), or for any agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

RoutingMode = Literal["prefix-aware", "least-busy"]
ROUTING_MODES: tuple[RoutingMode, ...] = ("prefix-aware", "least-busy")
# What the monitor's ``RoutingCounts`` counts (its docstring defines each).
RoutingDecision = Literal["prefix_hit", "fallback", "least_busy"]
ROUTING_DECISIONS: tuple[RoutingDecision, ...] = ("prefix_hit", "fallback", "least_busy")
DEFAULT_IMBALANCE = 2


@dataclass(frozen=True, slots=True)
class Routing:
    """How the balancer picks agents (``--routing``, ``--routing-imbalance``)."""

    mode: RoutingMode = "prefix-aware"
    imbalance: int = DEFAULT_IMBALANCE

    @property
    def prefix_aware(self) -> bool:
        return self.mode == "prefix-aware"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One agent as the policy sees it."""

    free: bool  # it has a free slot
    load: int  # busy slots plus requests waiting for it
    depth: int  # how many leading pieces of the request's prompt it served recently


def choose(candidates: Sequence[Candidate], imbalance: int) -> tuple[int, RoutingDecision] | None:
    """The index of the agent to claim a slot on now, and why; None when none has a free slot.

    Among equally loaded free agents the first wins, as least-busy dispatch always did; a
    fallback prefers, among them, the one holding more of the prompt.
    """
    free = [index for index, candidate in enumerate(candidates) if candidate.free]
    if not free:
        return None
    holders = _prefix_holders(candidates, imbalance)
    if holders is None:
        return min(free, key=lambda index: candidates[index].load), "least_busy"
    hits = [index for index in holders if candidates[index].free]
    if hits:
        return min(hits, key=lambda index: candidates[index].load), "prefix_hit"
    return (
        min(free, key=lambda index: (candidates[index].load, -candidates[index].depth)),
        "fallback",
    )


def pin(candidates: Sequence[Candidate], imbalance: int) -> int | None:
    """The index of the agent a request that must wait should wait for; None: any agent."""
    holders = _prefix_holders(candidates, imbalance)
    if not holders:
        return None
    return min(holders, key=lambda index: candidates[index].load)


def within_imbalance(load: int, least_load: int, imbalance: int) -> bool:
    return load <= least_load + imbalance


def _prefix_holders(candidates: Sequence[Candidate], imbalance: int) -> list[int] | None:
    """The agents holding the longest prefix that are loaded within the imbalance (maybe none);
    None when no agent holds any prefix of the request."""
    deepest = max((candidate.depth for candidate in candidates), default=0)
    if deepest == 0:
        return None
    least = min(candidate.load for candidate in candidates)
    return [
        index
        for index, candidate in enumerate(candidates)
        if candidate.depth == deepest and within_imbalance(candidate.load, least, imbalance)
    ]
