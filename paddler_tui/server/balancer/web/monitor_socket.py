"""The monitor WebSocket ``/api/v1/monitor_socket`` (paddler-tui extension).

A frame on connect, then one whenever something changed, at most ten a second, and one a
second regardless so clocks keep moving. Nothing is queued per subscriber: each frame is built
from the current state and the hub's bounded event history, so a subscriber that does not read
only blocks its own sender (the transport applies backpressure) and costs no memory.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketDisconnect

from paddler_tui.protocol.monitor import (
    MonitorAgent,
    MonitorBuffer,
    MonitorEvent,
    MonitorTimeouts,
    MonitorUpdate,
    RoutingCounts,
    encode_monitor_update,
)
from paddler_tui.server.balancer.agent_controller import AgentController
from paddler_tui.server.balancer.balancer import Balancer
from paddler_tui.server.balancer.change_signal import wait_for_any
from paddler_tui.server.balancer.monitor_hub import now_ms

MIN_INTERVAL_S = 0.1
HEARTBEAT_S = 1.0


def monitor_agent(agent: AgentController) -> MonitorAgent:
    status = agent.status
    extra_buffers = agent.host.extra_buffers
    return MonitorAgent(
        id=agent.id,
        name=agent.name,
        model_path=status.model_path,
        state_application_status=status.state_application_status,
        slots_total=status.slots_total,
        slots_busy=agent.slots_processing,
        download_current=status.download_current,
        download_total=status.download_total,
        download_filename=status.download_filename,
        issues=status.issues,
        extra_buffers=extra_buffers.enabled if extra_buffers else None,
        extra_buffers_reason=extra_buffers.reason if extra_buffers else None,
        prompt_tokens=agent.prompt_tokens,
        cached_prompt_tokens=agent.cached_prompt_tokens,
        prompt_cache_ram=agent.host.prompt_cache_ram,
        routed=RoutingCounts(
            prefix_hit=agent.routed["prefix_hit"],
            fallback=agent.routed["fallback"],
            least_busy=agent.routed["least_busy"],
        ),
    )


def build_update(balancer: Balancer, after_event: int) -> tuple[MonitorUpdate, int]:
    """The frame for a subscriber that has seen events up to ``after_event``; the new mark."""
    hub = balancer.monitor
    events: list[MonitorEvent] = [event for number, event in hub.events if number > after_event]
    oldest_kept = hub.events[0][0] if hub.events else hub.event_count + 1
    dropped = max(0, oldest_kept - after_event - 1) if after_event >= 0 else 0
    settings = balancer.settings
    update = MonitorUpdate(
        server_time=now_ms(),
        agents=[monitor_agent(agent) for agent in balancer.pool.agents()],
        buffer=MonitorBuffer(
            buffered=balancer.buffer.buffered,
            max_buffered=settings.max_buffered_requests,
            timeout_ms=settings.buffered_request_timeout_ms,
        ),
        requests=hub.requests(),
        timeouts=MonitorTimeouts(
            buffered_request_timeout_ms=settings.buffered_request_timeout_ms,
            inference_item_timeout_ms=settings.inference_item_timeout_ms,
        ),
        events=events,
        events_dropped=dropped,
        local_agents=balancer.local_agents() if balancer.local_agents is not None else [],
    )
    return update, hub.event_count


async def serve_monitor_socket(socket: WebSocket, balancer: Balancer) -> None:
    await socket.accept()
    sending = asyncio.create_task(_send_updates(socket, balancer))
    try:
        # Subscribers have nothing to say; reading notices when they leave.
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        pass
    finally:
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sending


async def _send_updates(socket: WebSocket, balancer: Balancer) -> None:
    signals = (balancer.monitor.changed, balancer.pool.changed, balancer.buffer.changed)
    # -1: the first frame carries the whole kept history.
    seen = -1
    while True:
        marks = [(signal, signal.generation) for signal in signals]
        update, seen = build_update(balancer, seen)
        await socket.send_text(encode_monitor_update(update).decode())
        await asyncio.sleep(MIN_INTERVAL_S)
        # At once if anything changed while sending or pausing; a heartbeat frame otherwise.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HEARTBEAT_S):
                await wait_for_any(marks)
