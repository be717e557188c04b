"""``paddler-tui agent``: wire the status, the model, the state applier and the connection."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import signal

from paddler_tui.net_address import HostPort
from paddler_tui.protocol.ids import new_id
from paddler_tui.server.agent.balancer_connection import BalancerConnection
from paddler_tui.server.agent.engine.extra_buffers import ExtraBuffersMode
from paddler_tui.server.agent.engine.types import (
    DEFAULT_PROMPT_CACHE_RAM_MIB,
    prompt_cache_bytes,
)
from paddler_tui.server.agent.running_requests import RunningRequests
from paddler_tui.server.agent.state_applier import StateApplier
from paddler_tui.server.agent.status import AgentStatus
from paddler_tui.server.heartbeat import Heartbeat

logger = logging.getLogger(__name__)

# A signal must end the process within 5 s even mid-request; leave room for the interpreter.
SHUTDOWN_BUDGET_S = 3.5


async def serve_agent(
    *,
    management_addr: HostPort,
    slots: int,
    name: str | None,
    threads: int | None,
    stopping: asyncio.Event,
    api_key: str | None = None,
    extra_buffers: ExtraBuffersMode = "auto",
    prompt_cache_ram_mib: int = DEFAULT_PROMPT_CACHE_RAM_MIB,
    heartbeat: Heartbeat | None = None,
) -> None:
    """Run one agent until ``stopping`` is set, then deregister and free the model."""
    status = AgentStatus(desired_slots_total=slots)
    requests = RunningRequests(status=status, agent_name=name)
    applier = StateApplier(
        status=status,
        requests=requests,
        slots=slots,
        threads=threads,
        extra_buffers=extra_buffers,
        prompt_cache_ram=prompt_cache_bytes(prompt_cache_ram_mib),
    )
    connection = BalancerConnection(
        management_addr=management_addr,
        agent_id=new_id(),
        name=name,
        status=status,
        requests=requests,
        applier=applier,
        api_key=api_key,
        heartbeat=heartbeat,
    )
    applying = asyncio.create_task(applier.run())
    try:
        await connection.run(stopping)
    finally:
        applying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await applying
        await requests.close()


def run_agent(
    *,
    management_addr: HostPort,
    slots: int,
    name: str | None,
    threads: int | None,
    api_key: str | None = None,
    extra_buffers: ExtraBuffersMode = "auto",
    prompt_cache_ram_mib: int = DEFAULT_PROMPT_CACHE_RAM_MIB,
    heartbeat: Heartbeat | None = None,
) -> int:
    # A native crash (llama.cpp) prints every thread's Python stack to stderr, which is the log.
    faulthandler.enable()

    async def main() -> None:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping.set)
        serving = asyncio.create_task(
            serve_agent(
                management_addr=management_addr,
                slots=slots,
                name=name,
                threads=threads,
                stopping=stopping,
                api_key=api_key,
                extra_buffers=extra_buffers,
                prompt_cache_ram_mib=prompt_cache_ram_mib,
                heartbeat=heartbeat,
            )
        )
        signalled = asyncio.create_task(stopping.wait())
        await asyncio.wait({serving, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            signalled.cancel()
            serving.result()
            return
        logger.info("shutting down")
        try:
            await asyncio.wait_for(serving, SHUTDOWN_BUDGET_S)
        except TimeoutError:
            logger.warning("shutdown took longer than %.1f s; exiting anyway", SHUTDOWN_BUDGET_S)

    asyncio.run(main())
    return 0
