"""Per-second history of busy slots, buffered requests, tokens/s and the prompt-cache hit
share, for the sparklines.

Updates arrive irregularly (on change, at most ten a second, and a heartbeat each second), so
samples are keyed by the balancer's second: a second keeps its peak busy and buffered counts (a
short burst must not vanish) and the tokens generated in it and the prompt tokens of the requests
that finished in it; seconds without an update repeat the last counts with no tokens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from paddler_tui.client.monitoring.prompt_cache import PromptTokenCounter, PromptTokens
from paddler_tui.protocol.monitor import MonitorUpdate

HISTORY_SECONDS = 300


def slot_totals(update: MonitorUpdate) -> tuple[int, int]:
    """Busy and total slots over every agent."""
    return (
        sum(agent.slots_busy for agent in update.agents),
        sum(agent.slots_total for agent in update.agents),
    )


@dataclass
class _Sample:
    second: int
    busy: int
    buffered: int
    tokens: int
    prompt: PromptTokens = field(default_factory=PromptTokens)


class TokenCounter:
    """Tokens generated between two updates, from per-request counts.

    A request that finished leaves the update; its last tokens come from the completion event's
    usage, so a short answer between two frames still counts. What happened before the first
    update (the event history a new subscriber gets) is not counted as happening now.
    """

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._last_time: int | None = None

    def observe(self, update: MonitorUpdate) -> int:
        counting = self._last_time is not None
        tokens = 0
        current: dict[str, int] = {}
        for request in update.requests:
            if request.kind == "embedding":
                continue  # its items are embeddings, not tokens
            current[request.id] = request.tokens
            tokens += max(0, request.tokens - self._seen.get(request.id, 0))
        for event in update.events:
            request_id = event.request_id
            if (
                event.kind != "request_completed"
                or event.usage is None
                or request_id is None
                or request_id in current
            ):
                continue
            if request_id in self._seen:
                tokens += max(0, event.usage.completion_tokens - self._seen[request_id])
            elif self._last_time is not None and event.at > self._last_time:
                tokens += event.usage.completion_tokens
        self._seen = current
        self._last_time = update.server_time
        return tokens if counting else 0


class MonitorHistory:
    def __init__(self, seconds: int = HISTORY_SECONDS) -> None:
        self._samples: deque[_Sample] = deque(maxlen=seconds)
        self._tokens = TokenCounter()
        self._prompt_tokens = PromptTokenCounter()

    def observe(self, update: MonitorUpdate) -> None:
        second = update.server_time // 1000
        busy, _ = slot_totals(update)
        buffered = update.buffer.buffered
        tokens = self._tokens.observe(update)
        prompt = self._prompt_tokens.observe(update)
        last = self._samples[-1] if self._samples else None
        if last is not None and second == last.second:
            last.busy = max(last.busy, busy)
            last.buffered = max(last.buffered, buffered)
            last.tokens += tokens
            last.prompt += prompt
            return
        if last is not None and second > last.second:
            gap = min(second - last.second - 1, self._samples.maxlen or 0)
            for offset in range(gap, 0, -1):
                self._samples.append(_Sample(second - offset, last.busy, last.buffered, 0))
        elif last is not None:
            # The balancer restarted with a clock behind ours: start the history again.
            self._samples.clear()
        self._samples.append(_Sample(second, busy, buffered, tokens, prompt))

    def _series(self, values: list[int]) -> list[float]:
        # Padded to the whole window with zeros: the chart's time axis stays put and its scale
        # starts at zero instead of at the smallest value seen.
        window = self._samples.maxlen or len(values)
        return [0.0] * (window - len(values)) + [float(value) for value in values]

    @property
    def busy(self) -> list[float]:
        return self._series([sample.busy for sample in self._samples])

    @property
    def buffered(self) -> list[float]:
        return self._series([sample.buffered for sample in self._samples])

    @property
    def tokens_per_second(self) -> list[float]:
        return self._series([sample.tokens for sample in self._samples])

    @property
    def cache_hit_percent(self) -> list[float]:
        """Per second, the percentage of the prompt tokens finished in it that a cache held; a
        second without any repeats the one before, as the share of the last requests."""
        percents: list[int] = []
        last = 0
        for sample in self._samples:
            share = sample.prompt.share
            if share is not None:
                last = round(100 * share)
            percents.append(last)
        return self._series(percents)

    def latest_prompt_tokens(self) -> PromptTokens:
        """The prompt tokens of the newest second that finished any; none if none in the window."""
        for sample in reversed(self._samples):
            if sample.prompt.prompt > 0:
                return sample.prompt
        return PromptTokens()

    def latest(self) -> tuple[int, int]:
        """Busy slots and buffered requests of the newest second."""
        if not self._samples:
            return 0, 0
        return self._samples[-1].busy, self._samples[-1].buffered

    def latest_tokens_per_second(self) -> float:
        """The last complete second's rate (the current one is still filling)."""
        return float(self._samples[-2].tokens) if len(self._samples) >= 2 else 0.0
