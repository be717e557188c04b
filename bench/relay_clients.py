"""Clients that read time-stamped token streams (from bench.token_source) and time them."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from websockets.asyncio.client import connect

from paddler_tui.api_key import authorization_headers

STAMP_KEY = '"ContentToken":"'


@dataclass
class StreamStats:
    tokens: int = 0
    latencies_us: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class RunStats:
    tokens: int
    seconds: float
    latencies_us: list[float]

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds


async def read_stream(
    url: str, first_frame: str, *, compression: str | None, api_key: str | None = None
) -> StreamStats:
    """Send ``first_frame``, then read token frames until the Done."""
    stats = StreamStats()
    async with connect(
        url,
        max_size=None,
        compression=compression,
        additional_headers=authorization_headers(api_key),
    ) as socket:
        await socket.send(first_frame)
        async for frame in socket:
            received = time.monotonic_ns()
            assert isinstance(frame, str)
            at = frame.find(STAMP_KEY)
            if at >= 0:
                start = at + len(STAMP_KEY)
                sent = int(frame[start : frame.index('"', start)])
                stats.latencies_us.append((received - sent) / 1000)
                stats.tokens += 1
            elif '"Done"' in frame:
                return stats
            else:
                raise RuntimeError(f"unexpected frame: {frame[:200]}")
    raise RuntimeError("the stream ended without Done")


def balancer_request(tokens: int, interval_us: int, index: int) -> str:
    return json.dumps(
        {
            "Request": {
                "id": f"bench-{index}",
                "request": {
                    "ContinueFromRawPrompt": {"raw_prompt": str(interval_us), "max_tokens": tokens}
                },
            }
        }
    )


def direct_request(tokens: int, interval_us: int) -> str:
    return json.dumps({"tokens": tokens, "interval_us": interval_us})


async def run_clients(
    url: str, frames: list[str], *, compression: str | None, api_key: str | None = None
) -> RunStats:
    """One connection per frame, all at once; wall time from the first send to the last Done."""
    started = time.perf_counter()
    streams = await asyncio.gather(
        *(read_stream(url, frame, compression=compression, api_key=api_key) for frame in frames)
    )
    seconds = time.perf_counter() - started
    return RunStats(
        tokens=sum(s.tokens for s in streams),
        seconds=seconds,
        latencies_us=[latency for s in streams for latency in s.latencies_us],
    )
