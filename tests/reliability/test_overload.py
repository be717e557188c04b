"""200 concurrent socket requests against 2 agents x 2 slots and a buffer of 30 (issue 8,
fault test 3).

Every request is long enough that no slot frees up while the 200 arrive, so exactly
4 run, 30 wait and the other 166 are refused with 503 before anything finishes; the 34 end with
Done or the buffer's 504. Each request has its own socket; all close cleanly, and the balancer's
open file descriptors come back to what they were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection, connect

from paddler_tui.protocol.envelope import ErrorEnvelope
from paddler_tui.protocol.inference_socket import (
    InferenceServerMessage,
    decode_inference_server_message,
)
from tests.reliability.streams import is_done, open_fds
from tests.support.cluster import Cluster, busy, socket_request, watch_agents, watch_buffer

pytestmark = pytest.mark.slow

CLIENTS = 200
SLOTS = 2 * 2
BUFFER = 30
TOKENS = 100
OVERFLOW = (503, "Buffered requests overflow")
BUFFER_TIMEOUT = (504, "Waiting for available slot timed out")


async def last_message(socket: ClientConnection, request_id: str) -> InferenceServerMessage:
    while True:
        message = decode_inference_server_message(await socket.recv())
        if isinstance(message, ErrorEnvelope) or is_done(message):
            assert message.request_id == request_id
            return message


def error_of(message: InferenceServerMessage) -> tuple[int, str] | None:
    if isinstance(message, ErrorEnvelope):
        return message.error.code, message.error.description
    return None


async def test_two_hundred_requests_exactly_the_excess_is_refused_at_once(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("overload").start(
        "--max-buffered-requests",
        str(BUFFER),
        "--buffered-request-timeout",
        "3000",
        agents=2,
        slots=2,
    )
    balancer_pid = cluster.b.pid
    async with watch_agents(cluster.b) as agents, watch_buffer(cluster.b) as buffer:
        fds_before = open_fds(balancer_pid)
        sockets = await asyncio.gather(
            *(
                connect(cluster.b.inference_socket_url, additional_headers=cluster.b.headers)
                for _ in range(CLIENTS)
            )
        )
        order: list[int] = []

        async def request(index: int, socket: ClientConnection) -> InferenceServerMessage:
            await socket.send(socket_request(f"r{index}", TOKENS))
            message = await last_message(socket, f"r{index}")
            order.append(index)
            return message

        endings = await asyncio.wait_for(
            asyncio.gather(*(request(i, s) for i, s in enumerate(sockets))), 60
        )
        errors = [error_of(message) for message in endings]
        refused = [i for i, error in enumerate(errors) if error == OVERFLOW]
        assert len(refused) == CLIENTS - SLOTS - BUFFER
        served = [e for e in errors if e != OVERFLOW]
        assert all(error in (None, BUFFER_TIMEOUT) for error in served)
        assert sum(error is None for error in served) >= SLOTS
        # At once: every refusal came before any other request ended.
        assert set(order[: len(refused)]) == set(refused)
        assert max(busy(s) for s in agents.snapshots) == SLOTS
        assert max(s.buffered_requests_current for s in buffer.snapshots) == BUFFER

        await asyncio.gather(*(socket.close() for socket in sockets))
        assert all(socket.close_code == 1000 for socket in sockets)
        await agents.until(lambda s: busy(s) == 0, timeout=10)
        await buffer.until(lambda s: s.buffered_requests_current == 0)
        async with asyncio.timeout(5):
            while open_fds(balancer_pid) > fds_before:
                await asyncio.sleep(0.05)
    assert "Traceback" not in cluster.b.log_text()
