"""A client that stops reading its HTTP stream or inference socket (issue 8, fault test 4).

A fake agent floods the slow client's request with large tokens until every buffer between the
balancer and the client is full, so the balancer's next write waits. Another client's stream is
served meanwhile, and once a write has waited the item timeout the balancer stops the slow
request (the agent hears StopRespondingTo, the slot comes back) and closes its connection. The
same holds for the native NDJSON stream, the OpenAI service's SSE stream and the inference
WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from functools import partial

import pytest
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from tests.reliability.streams import is_done
from tests.support.cluster import (
    Cluster,
    FakeAgent,
    busy,
    collect,
    http_client,
    raw_prompt_body,
    socket_request,
    watch_agents,
)
from tests.support.generated_tokens import done, token

pytestmark = pytest.mark.slow

ITEM_TIMEOUT_S = 2.0
RAW_PROMPT = "/api/v1/continue_from_raw_prompt"
CHAT = "/v1/chat/completions"
STREAMED_CHAT = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
# Far more than the socket buffers on both ends of the connection hold.
FLOOD_TOKENS = 200
FLOOD_TOKEN = "x" * 65536


def post_and_never_read(addr: str, path: str, body: object) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    payload = json.dumps(body).encode()
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n".encode()
        + payload
    )
    return sock


def open_socket_and_never_read(url: str, request: str) -> socket.socket:
    """A WebSocket client on a raw socket: handshake, one request, then no more reading."""
    protocol = ClientProtocol(parse_uri(url))
    protocol.send_request(protocol.connect())
    host, port = url.removeprefix("ws://").split("/", 1)[0].rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(b"".join(protocol.data_to_send()))
    while protocol.handshake_exc is None and not protocol.events_received():
        protocol.receive_data(sock.recv(1))  # byte by byte: nothing past the handshake
        if protocol.state.name == "OPEN":
            break
    assert protocol.state.name == "OPEN", protocol.handshake_exc
    protocol.send_text(request.encode())
    sock.sendall(b"".join(protocol.data_to_send()))
    return sock


def read_to_end(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    received = bytearray()
    while chunk := sock.recv(1 << 20):
        received.extend(chunk)
    return bytes(received)


@pytest.mark.parametrize("service", ["native", "openai", "socket"])
async def test_a_client_that_stops_reading_blocks_no_one_and_is_stopped_at_the_item_timeout(
    make_cluster: Callable[[str], Cluster], service: str
) -> None:
    cluster = make_cluster("slow-reader")
    balancer = cluster.start_balancer(
        "--inference-item-timeout", str(int(ITEM_TIMEOUT_S * 1000)), openai=True
    )
    assert balancer.openai_addr is not None
    addr, path, body = (
        (balancer.inference_addr, RAW_PROMPT, raw_prompt_body(1000))
        if service == "native"
        else (balancer.openai_addr, CHAT, STREAMED_CHAT)
    )
    never_read = (
        partial(
            open_socket_and_never_read, balancer.inference_socket_url, socket_request("s", 1000)
        )
        if service == "socket"
        else partial(post_and_never_read, addr, path, body)
    )
    loop = asyncio.get_running_loop()
    async with (
        FakeAgent(cluster.b, slots=2, answer_stops=True) as fake,
        watch_agents(cluster.b) as agents,
        http_client() as client,
    ):
        await agents.until(lambda s: len(s.agents) == 1)
        started = loop.time()
        slow = await asyncio.to_thread(never_read)
        try:
            slow_request = await fake.next_request()
            for _ in range(FLOOD_TOKENS):
                await fake.respond(slow_request.id, token(FLOOD_TOKEN))

            url = f"{cluster.b.inference_url}{RAW_PROMPT}"
            other = asyncio.create_task(collect(client, url, raw_prompt_body(5)))
            other_request = await fake.next_request()
            for index in range(5):
                await fake.respond(other_request.id, token(str(index)))
            await fake.respond(other_request.id, done())
            assert is_done((await asyncio.wait_for(other, 5))[-1])
            assert fake.stops.empty()  # the slow request still holds its slot

            assert await fake.next_stop(timeout=ITEM_TIMEOUT_S + 5) == slow_request.id
            assert loop.time() - started >= ITEM_TIMEOUT_S
            await agents.until(lambda s: busy(s) == 0, timeout=5)
            # The connection ends unfinished: no last chunk of the chunked body.
            received = await asyncio.to_thread(read_to_end, slow, 10)
            if service != "socket":
                assert received.startswith(b"HTTP/1.1 200")
                assert not received.endswith(b"0\r\n\r\n")
        finally:
            slow.close()
    log = cluster.b.log_text()
    ending = "closing its inference socket" if service == "socket" else "ending its stream"
    assert f"a client read nothing for 2.0 s; {ending}" in log
    assert "Traceback" not in log
