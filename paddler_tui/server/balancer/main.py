"""``paddler-tui balancer``: bind the services, run them, shut down cleanly on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from paddler_tui.net_address import HostPort
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.state_database import (
    StateDatabaseError,
    open_state_database,
    parse_state_database_url,
)
from paddler_tui.server.balancer.statsd import report_statsd
from paddler_tui.server.balancer.web.inference_service import create_inference_app
from paddler_tui.server.balancer.web.management_service import create_management_app
from paddler_tui.server.balancer.web.openai_service import create_openai_app

logger = logging.getLogger(__name__)

WEBSOCKET_MAX_BYTES = 50 * 1024 * 1024
# (interval, timeout) in seconds for the inference and OpenAI services' sockets.
WEBSOCKET_PINGS = (3.0, 20.0)
GRACEFUL_SHUTDOWN_S = 2
# How long shutdown waits for inference sockets to send their errors and close frames.
SOCKET_CLOSE_GRACE_S = 2.0


class BindError(Exception):
    pass


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the balancer runs several and owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Service:
    name: str
    addr: HostPort
    app: ASGIApp
    sock: socket.socket | None = None


def bind(name: str, addr: HostPort) -> socket.socket:
    """A listening socket, or BindError with Paddler's "Unable to bind {service} to {addr}"."""
    try:
        infos = socket.getaddrinfo(addr.host, addr.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(1024)
    except OSError as error:
        raise BindError(f"Unable to bind {name} to {addr}: {error}") from error
    sock.setblocking(False)
    return sock


async def serve_balancer(
    balancer: Balancer,
    sockets: dict[str, socket.socket],
    stopping: asyncio.Event,
    *,
    log_level: str = "warning",
) -> None:
    """Run every service on its bound socket until ``stopping`` is set."""
    # What is loaded by now lives as long as the process. Frozen, it is left out of the cyclic
    # collector's full passes, which otherwise stall every stream for tens of milliseconds.
    gc.collect()
    gc.freeze()
    factories: dict[str, Callable[[Balancer], ASGIApp]] = {
        "inference service": create_inference_app,
        "management service": create_management_app,
        "OpenAI-compatible service": create_openai_app,
    }
    apps = {name: factories[name](balancer) for name in sockets}
    heartbeat = balancer.settings.agent_heartbeat
    # The management service carries the agent sockets: its pings are their heartbeats.
    pings = {"management service": (heartbeat.interval_s, heartbeat.timeout_s)}
    servers = [
        _Server(
            uvicorn.Config(
                apps[name],
                ws="websockets-sansio",
                ws_max_size=WEBSOCKET_MAX_BYTES,
                ws_ping_interval=pings.get(name, WEBSOCKET_PINGS)[0],
                ws_ping_timeout=pings.get(name, WEBSOCKET_PINGS)[1],
                # One small frame per token: deflate costs more CPU than it saves bytes (and
                # Paddler does not compress either).
                ws_per_message_deflate=False,
                lifespan="off",
                log_level=log_level,
                access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            )
        )
        for name in sockets
    ]
    background = [
        asyncio.create_task(balancer.buffer.run()),
        asyncio.create_task(balancer.cluster.run()),
    ]
    settings = balancer.settings
    if settings.statsd_addr is not None:
        background.append(
            asyncio.create_task(
                report_statsd(
                    settings.statsd_addr,
                    settings.statsd_prefix,
                    settings.statsd_reporting_interval_ms,
                    balancer.gauges,
                )
            )
        )
    serving = [
        asyncio.create_task(server.serve(sockets=[sockets[name]]))
        for server, name in zip(servers, sockets, strict=True)
    ]
    try:
        await stopping.wait()
    finally:
        logger.info("shutting down")
        # Waiting and streaming clients hear "balancer is shutting down" before sockets close.
        balancer.buffer.close()
        balancer.pool.shut_down()
        balancer.stopping.set()
        await asyncio.sleep(0.05)
        # Before uvicorn's own shutdown, which would close them with 1012 instead.
        if balancer.socket_sessions:
            await asyncio.wait(balancer.socket_sessions, timeout=SOCKET_CLOSE_GRACE_S)
        for server in servers:
            server.should_exit = True
        await balancer.forwarder.close()
        await asyncio.gather(*serving, return_exceptions=True)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)


class StartupError(Exception):
    """The balancer cannot start; the message says why (bad state database, bind failure)."""


async def prepare_balancer(settings: BalancerSettings) -> tuple[Balancer, dict[str, socket.socket]]:
    """Open the state database and bind every service; raise StartupError if either fails."""
    try:
        database = await open_state_database(parse_state_database_url(settings.state_database))
    except StateDatabaseError as error:
        raise StartupError(str(error)) from error
    wanted = {
        "inference service": settings.inference_addr,
        "management service": settings.management_addr,
    }
    if settings.compat_openai_addr is not None:
        wanted["OpenAI-compatible service"] = settings.compat_openai_addr
    sockets: dict[str, socket.socket] = {}
    try:
        for name, addr in wanted.items():
            sockets[name] = bind(name, addr)
    except BindError as error:
        for sock in sockets.values():
            sock.close()
        raise StartupError(str(error)) from error
    for name, addr in wanted.items():
        logger.info("%s listening on %s", name, addr)
    return Balancer(settings, database), sockets


def uvicorn_log_level(log_level: str) -> str:
    # uvicorn's own info lines (startup banners) are noise next to ours.
    return "info" if log_level == "debug" else "warning"


def run_balancer(settings: BalancerSettings, *, log_level: str) -> int:
    # A native crash prints every thread's Python stack to stderr (the log), never nothing.
    faulthandler.enable()

    async def main() -> int:
        try:
            balancer, sockets = await prepare_balancer(settings)
        except StartupError as error:
            print(f"paddler-tui balancer: {error}", file=sys.stderr)
            return 1
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        await serve_balancer(balancer, sockets, stopping, log_level=uvicorn_log_level(log_level))
        return 0

    return asyncio.run(main())
