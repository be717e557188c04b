"""A monitor subscriber that never reads must neither slow streams down nor grow the balancer
(issue 6's last acceptance points, measured here).

The relay setup of ``bench.balancer_relay`` (fake agent, real balancer, 8 clients flooding
tokens) runs with and without a subscriber on ``/api/v1/monitor_socket`` that completes the
handshake with a tiny receive buffer and then never reads. The runs take turns; the best of
each is compared. The balancer's RSS is read before the subscriber connects and after all the
runs with it. Targets: at most 5% fewer tokens/s, and no memory growth (under 1 MiB).
Run: ``python -m bench.monitor_subscriber`` (writes bench/results/monitor_subscriber.json).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fcntl
import os
import socket
import struct
import termios
from typing import TypedDict

from bench.balancer_relay import flood
from bench.common import Row, publish, rss_mib
from bench.relay_cluster import RelayCluster, relay_cluster

CLIENTS = 8
TARGET_SLOWDOWN = 0.05
TARGET_GROWTH_MIB = 1.0


class SubscriberResults(TypedDict):
    # Evidence that it really stalled: what the balancer sent sits unread in its buffer.
    subscriber_unread_bytes: int
    tokens_per_second: dict[str, list[float]]
    balancer_rss_mib: dict[str, float]


def stalled_subscriber(addr: str) -> socket.socket:
    """A monitor socket client that reads the handshake's answer and nothing after it."""
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/v1/monitor_socket HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    answer = b""
    while b"\r\n\r\n" not in answer and (byte := sock.recv(1)):
        answer += byte
    if not answer.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"the monitor socket refused: {answer!r}")
    return sock


def unread_bytes(sock: socket.socket) -> int:
    waiting: int = struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0" * 4))[0]
    return waiting


async def rate(relay: RelayCluster, tokens: int) -> float:
    return (await flood(relay, CLIENTS, tokens, direct=False)).tokens_per_second


async def measure(relay: RelayCluster, args: argparse.Namespace) -> SubscriberResults:
    management = relay.balancer.management_addr
    await rate(relay, args.tokens // 10)  # warm-up
    alone: list[float] = []
    watched: list[float] = []
    # The two setups take turns, so a noisy moment on the machine hits both alike.
    for _ in range(args.repeats):
        alone.append(await rate(relay, args.tokens))
        subscriber = stalled_subscriber(management)
        try:
            watched.append(await rate(relay, args.tokens))
        finally:
            subscriber.close()
    # Memory: one subscriber stalled while streams run for as long again.
    rss_before = rss_mib(relay.balancer.pid)
    subscriber = stalled_subscriber(management)
    try:
        for _ in range(args.repeats):
            await rate(relay, args.tokens)
        rss_after = rss_mib(relay.balancer.pid)
        unread = unread_bytes(subscriber)
    finally:
        subscriber.close()
    return {
        "subscriber_unread_bytes": unread,
        "tokens_per_second": {"alone": alone, "with_stalled_subscriber": watched},
        "balancer_rss_mib": {"before": rss_before, "after": rss_after},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=64_000, help="tokens per run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with relay_cluster() as relay:
        results = asyncio.run(measure(relay, args))
    rates, rss = results["tokens_per_second"], results["balancer_rss_mib"]
    alone, watched = max(rates["alone"]), max(rates["with_stalled_subscriber"])
    slowdown = 1 - watched / alone
    growth = rss["after"] - rss["before"]
    rows = [
        Row(
            f"tokens/s, {CLIENTS} clients + stalled subscriber (baseline: none)",
            watched,
            "tokens/s",
            alone,
        ),
        Row("slowdown", slowdown * 100, "%", None, f"<= {TARGET_SLOWDOWN:.0%}",
            slowdown <= TARGET_SLOWDOWN),
        Row("balancer RSS with it stalled (baseline: before)", rss["after"], "MiB",
            rss["before"], f"< +{TARGET_GROWTH_MIB:g} MiB", growth < TARGET_GROWTH_MIB),
    ]  # fmt: skip
    publish(
        "monitor_subscriber",
        "a monitor subscriber that never reads (fake agent, real balancer)",
        {"settings": {"clients": CLIENTS, "tokens": args.tokens, "repeats": args.repeats},
         **results},
        rows,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
