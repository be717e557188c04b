"""StatsD gauge reporting (``--statsd-addr``, ``--statsd-prefix``, ``--statsd-reporting-interval``).

Metric names: ``{prefix}{name}`` with nothing in between, e.g. ``paddler_slots_processing:3|g``.
Paddler's StatsD client puts a dot between prefix and name (``paddler_.slots_processing``), but its
docs promise ``paddler_slots_processing`` and the Prometheus ``/metrics`` names join the prefix the
same undotted way; this follows the docs so both exports share one set of names. Each gauge is its
own datagram, which every StatsD server accepts.

As in Paddler, a report goes out on start and then every interval, and a tick where any gauge is
negative (an accounting bug) sends nothing rather than a partial, inconsistent set.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.metrics import Gauges

logger = logging.getLogger(__name__)


def statsd_datagrams(prefix: str, gauges: Gauges) -> list[bytes] | None:
    """One ``name:value|g`` datagram per gauge, or None (with a warning) if any is negative."""
    negative = [name for name, _, value in gauges.named() if value < 0]
    if negative:
        logger.warning("Not reporting to StatsD: negative %s", ", ".join(negative))
        return None
    return [f"{prefix}{name}:{value}|g".encode() for name, _, value in gauges.named()]


async def report_statsd(
    target: HostPort, prefix: str, interval_ms: int, read_gauges: Callable[[], Gauges]
) -> None:
    """Send the gauges to ``target`` now and every ``interval_ms`` until cancelled.

    ``target`` is resolved once, up front; an unresolvable one raises :class:`OSError`.
    """
    if interval_ms <= 0:
        raise ValueError(f"StatsD reporting interval must be positive, got {interval_ms} ms")
    loop = asyncio.get_running_loop()
    family, _, _, _, address = (
        await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_DGRAM)
    )[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        while True:
            for datagram in statsd_datagrams(prefix, read_gauges()) or ():
                try:
                    await loop.sock_sendto(sock, datagram, address)
                except OSError as error:
                    # UDP to a missing collector is routine; keep reporting once it comes back.
                    logger.warning("Unable to send StatsD gauges to %s: %s", target, error)
                    break
            await asyncio.sleep(interval_ms / 1000)
