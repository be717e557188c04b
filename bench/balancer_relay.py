"""Tokens/s relayed by the balancer, and the latency it adds per token (issue 8).

A fake agent (``bench.token_source``) emits time-stamped tokens as fast as the protocol allows
to a real ``paddler-tui balancer``; 1, 8 and 64 WebSocket clients each stream one request
through the balancer's inference socket at once. The baseline is the same clients reading the
same token source straight, without the balancer.

- Throughput: every token flooded; aggregate tokens/s = tokens / wall time, best of the repeats.
  Target: at least 50,000 tokens/s through the balancer.
- Latency: the same clients with the source pacing tokens so that 8,000 tokens/s flow in total
  (well under capacity, so queueing does not dominate). A token's latency is the time from the
  source sending it to the client reading it; the added latency is the balancer's percentile
  minus the direct one. Target: p99 added under 2 ms at 8 clients.

Clients do not negotiate compression here (the agent link keeps its default deflate, as the real
agent does). Run: ``python -m bench.balancer_relay`` (writes bench/results/balancer_relay.json).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TypedDict

from bench.common import Row, percentile, publish
from bench.relay_clients import RunStats, balancer_request, direct_request, run_clients
from bench.relay_cluster import RelayCluster, relay_cluster

CLIENTS = (1, 8, 64)
TARGET_TOKENS_PER_S = 50_000
TARGET_ADDED_P99_MS = 2.0
LATENCY_CLIENTS = 8


class Percentiles(TypedDict):
    p50: float
    p99: float


class ClientsResult(TypedDict):
    """One number of clients: the best tokens/s of each path, and each path's latency in ms."""

    tokens_per_second: float
    direct_tokens_per_second: float
    latency_ms: dict[str, Percentiles]


async def flood(relay: RelayCluster, clients: int, tokens: int, *, direct: bool) -> RunStats:
    each = tokens // clients
    if direct:
        frames = [direct_request(each, 0) for _ in range(clients)]
        return await run_clients(relay.direct_url, frames, compression=None)
    frames = [balancer_request(each, 0, index) for index in range(clients)]
    return await run_clients(relay.balancer_url, frames, compression=None)


async def paced(
    relay: RelayCluster, clients: int, rate: int, seconds: float, *, direct: bool
) -> RunStats:
    interval_us = int(clients / rate * 1e6)
    each = int(seconds * rate / clients)
    if direct:
        frames = [direct_request(each, interval_us) for _ in range(clients)]
        return await run_clients(relay.direct_url, frames, compression=None)
    frames = [balancer_request(each, interval_us, index) for index in range(clients)]
    return await run_clients(relay.balancer_url, frames, compression=None)


async def measure(relay: RelayCluster, args: argparse.Namespace) -> dict[str, ClientsResult]:
    await flood(relay, 8, args.tokens // 10, direct=False)  # warm-up
    results: dict[str, ClientsResult] = {}
    for clients in CLIENTS:
        through: list[float] = []
        straight: list[float] = []
        via_latency: list[float] = []
        direct_latency: list[float] = []
        # Both paths take turns within each repeat, so a noisy moment hits both alike.
        for _ in range(args.repeats):
            through.append(
                (await flood(relay, clients, args.tokens, direct=False)).tokens_per_second
            )
            straight.append(
                (await flood(relay, clients, args.tokens, direct=True)).tokens_per_second
            )
            via = await paced(relay, clients, args.rate, args.seconds, direct=False)
            direct = await paced(relay, clients, args.rate, args.seconds, direct=True)
            via_latency += via.latencies_us
            direct_latency += direct.latencies_us
        results[str(clients)] = {
            "tokens_per_second": max(through),
            "direct_tokens_per_second": max(straight),
            "latency_ms": {
                name: {
                    "p50": percentile(values, 0.5) / 1000,
                    "p99": percentile(values, 0.99) / 1000,
                }
                for name, values in (("balancer", via_latency), ("direct", direct_latency))
            },
        }
    return results


def table(results: dict[str, ClientsResult]) -> list[Row]:
    rows: list[Row] = []
    for clients in CLIENTS:
        result = results[str(clients)]
        rate = result["tokens_per_second"]
        rows.append(
            Row(
                f"tokens/s, {clients} clients (baseline: direct)",
                rate,
                "tokens/s",
                result["direct_tokens_per_second"],
                f">= {TARGET_TOKENS_PER_S:,}",
                rate >= TARGET_TOKENS_PER_S,
            )
        )
    for clients in CLIENTS:
        latency = results[str(clients)]["latency_ms"]
        for name in ("p50", "p99"):
            added = latency["balancer"][name] - latency["direct"][name]
            targeted = clients == LATENCY_CLIENTS and name == "p99"
            rows.append(
                Row(
                    f"added latency {name}, {clients} clients (baseline: direct {name})",
                    added,
                    "ms",
                    latency["direct"][name],
                    f"< {TARGET_ADDED_P99_MS:g} ms" if targeted else "",
                    added < TARGET_ADDED_P99_MS if targeted else None,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=64_000, help="tokens per throughput run")
    parser.add_argument("--rate", type=int, default=8_000, help="paced tokens/s, all clients")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a paced run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with relay_cluster() as relay:
        results = asyncio.run(measure(relay, args))
    rows = table(results)
    settings = {"tokens": args.tokens, "rate": args.rate, "seconds": args.seconds}
    publish(
        "balancer_relay",
        "balancer relay (fake agent, real balancer)",
        {"settings": {**settings, "repeats": args.repeats}, "clients": results},
        rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
