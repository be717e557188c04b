"""The fault proxy of ``tests/support`` against a local echo server (issue 13, part 4).

Each fault is checked for what the end-to-end tests rely on: latency delays every chunk
without serializing them, a blackhole forwards nothing and closes nothing (new connections
are accepted and held), heal delivers what was held, reset is an RST on both sides, and
bandwidth paces a direction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support.fault_proxy import FaultProxy, ThreadedFaultProxy, abort_with_rst

pytestmark = pytest.mark.timeout(30)

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# Long enough that a forwarded byte would have arrived on a busy machine's loopback.
SILENCE_S = 0.3
FAREWELL = b"bye"


class EchoServer:
    """Echoes every byte; after the client's EOF says :data:`FAREWELL` and closes."""

    def __init__(self) -> None:
        self.connections = 0
        self.received = 0
        self.ends: list[str] = []
        self._server: asyncio.Server | None = None
        self.addr = ""

    async def start(self) -> EchoServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.addr = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while data := await reader.read(65536):
                self.received += len(data)
                writer.write(data)
                await writer.drain()
            self.ends.append("eof")
            writer.write(FAREWELL)
            await writer.drain()
        except ConnectionResetError:
            self.ends.append("reset")
        finally:
            writer.close()


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.stop()


async def dial(addr: str) -> Stream:
    host, port = addr.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def round_trip(stream: Stream, payload: bytes = b"ping") -> float:
    reader, writer = stream
    loop = asyncio.get_running_loop()
    started = loop.time()
    writer.write(payload)
    assert await reader.readexactly(len(payload)) == payload
    return loop.time() - started


async def assert_silent(reader: asyncio.StreamReader) -> None:
    """Nothing arrives, not even an EOF (a read would return b"" on one)."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), SILENCE_S)


async def test_forwards_both_ways_keeps_half_closes_and_counts(echo: EchoServer) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        reader, writer = await dial(proxy.addr)
        await round_trip((reader, writer), b"hello")
        assert (proxy.accepted, proxy.active) == (1, 1)
        assert (proxy.bytes_upstream, proxy.bytes_downstream) == (5, 5)
        # The client's EOF reaches the server, which can still answer.
        writer.write_eof()
        assert await reader.read() == FAREWELL
        await eventually(lambda: proxy.active == 0)
        assert echo.ends == ["eof"]
        assert proxy.bytes_downstream == 5 + len(FAREWELL)
        writer.close()


async def test_latency_delays_each_chunk_each_way_without_adding_up(echo: EchoServer) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        stream = await dial(proxy.addr)
        assert await round_trip(stream) < 0.2
        proxy.latency(0.3, "upstream")
        assert 0.29 <= await round_trip(stream) < 1.0
        proxy.latency(0.2)
        assert 0.39 <= await round_trip(stream) < 1.2

        # Ten chunks 50 ms apart: each is 0.4 s late, but they travel together. One after the
        # other they would take 4 s.
        reader, writer = stream
        loop = asyncio.get_running_loop()
        sent: list[float] = []
        arrived: list[float] = []
        received = b""

        async def receive() -> None:
            nonlocal received
            while len(received) < 10:
                chunk = await reader.read(10)
                received += chunk
                arrived.extend([loop.time()] * len(chunk))

        receiving = asyncio.create_task(receive())
        for digit in b"0123456789":
            sent.append(loop.time())
            writer.write(bytes([digit]))
            await asyncio.sleep(0.05)
        await receiving
        assert received == b"0123456789"
        assert all(late >= 0.39 for late in (a - s for a, s in zip(arrived, sent, strict=True)))
        assert arrived[-1] - sent[0] < 2.0

        proxy.latency(0)
        assert await round_trip(stream) < 0.2
        writer.close()


async def test_blackhole_forwards_nothing_closes_nothing_and_holds_new_connections(
    echo: EchoServer,
) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        old = await dial(proxy.addr)
        await round_trip(old)
        proxy.blackhole()
        old[1].write(b"held")
        await assert_silent(old[0])
        # A new connection is accepted but does not reach the server.
        new = await dial(proxy.addr)
        new[1].write(b"new")
        await assert_silent(new[0])
        assert (proxy.accepted, echo.connections, echo.received) == (2, 1, 4)
        assert echo.ends == []

        proxy.heal()
        assert await old[0].readexactly(4) == b"held"
        assert await new[0].readexactly(3) == b"new"
        assert (echo.connections, echo.ends) == (2, [])
        for _, writer in (old, new):
            writer.close()


async def test_a_connection_given_up_during_a_partition_never_reaches_the_server(
    echo: EchoServer,
) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        proxy.blackhole()
        for close in (lambda w: w.close(), abort_with_rst):
            _, writer = await dial(proxy.addr)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            await asyncio.sleep(0.05)
            close(writer)
        await eventually(lambda: proxy.active == 0)
        proxy.heal()
        await asyncio.sleep(SILENCE_S)
        assert (proxy.accepted, echo.connections) == (2, 0)


async def test_a_one_way_blackhole_lets_the_other_way_through(echo: EchoServer) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        reader, writer = await dial(proxy.addr)
        await round_trip((reader, writer))
        proxy.blackhole("downstream")
        writer.write(b"one way")
        await eventually(lambda: echo.received == 4 + 7)
        await assert_silent(reader)
        proxy.heal("downstream")
        assert await reader.readexactly(7) == b"one way"
        writer.close()


async def test_reset_aborts_every_connection_with_an_rst_on_both_sides(echo: EchoServer) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        streams = [await dial(proxy.addr) for _ in range(2)]
        for stream in streams:
            await round_trip(stream)
        assert proxy.reset() == 2
        for reader, _ in streams:
            with pytest.raises(ConnectionResetError):
                await reader.read(1)
        await eventually(lambda: echo.ends == ["reset", "reset"])
        assert (proxy.resets, proxy.active) == (2, 0)
        # Only the connections open at the time: the next one goes through.
        streams.append(await dial(proxy.addr))
        assert await round_trip(streams[-1]) < 0.2
        for _, writer in streams:
            writer.close()


async def test_an_rst_from_one_side_reaches_the_other(echo: EchoServer) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        reader, writer = await dial(proxy.addr)
        await round_trip((reader, writer))
        abort_with_rst(writer)
        await eventually(lambda: echo.ends == ["reset"])
        await eventually(lambda: proxy.active == 0)


async def test_bandwidth_paces_a_direction(echo: EchoServer) -> None:
    async with FaultProxy.to(echo.addr) as proxy:
        stream = await dial(proxy.addr)
        proxy.bandwidth(32_000, "upstream")
        # 16 kB at 32 kB/s: half a second (less the first piece, which goes at once).
        assert 0.4 <= await round_trip(stream, bytes(16_000)) < 3.0
        proxy.bandwidth(None)
        assert await round_trip(stream, bytes(16_000)) < 0.3
        stream[1].close()


async def test_an_unreachable_upstream_is_an_rst_to_the_client() -> None:
    closed = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
    port = closed.sockets[0].getsockname()[1]
    closed.close()
    await closed.wait_closed()
    async with FaultProxy("127.0.0.1", port) as proxy:
        reader, writer = await dial(proxy.addr)
        with pytest.raises(ConnectionResetError):
            await reader.read(1)
        assert (proxy.accepted, proxy.refused) == (1, 1)
        writer.close()


async def test_stop_ends_open_and_held_connections(echo: EchoServer) -> None:
    proxy = await FaultProxy.to(echo.addr).start()
    open_stream = await dial(proxy.addr)
    await round_trip(open_stream)
    proxy.blackhole()
    held = await dial(proxy.addr)
    await eventually(lambda: proxy.accepted == 2)
    await proxy.stop()
    for reader, writer in (open_stream, held):
        # Ended, by an EOF or an RST: either will do.
        with contextlib.suppress(ConnectionResetError):
            assert await reader.read(1) == b""
        writer.close()


async def test_the_threaded_proxy_runs_beside_a_blocked_loop(echo: EchoServer) -> None:
    with ThreadedFaultProxy.to(echo.addr) as proxy:
        stream = await dial(proxy.addr)
        proxy.latency(0.2, "downstream")
        assert 0.19 <= await round_trip(stream) < 1.0
        proxy.blackhole()
        stream[1].write(b"x")
        await assert_silent(stream[0])
        proxy.heal()
        assert await stream[0].readexactly(1) == b"x"
        proxy.clear()
        assert await round_trip(stream) < 0.2
        assert (proxy.accepted, proxy.active, proxy.bytes_upstream) == (1, 1, 9)
        assert proxy.reset() == 1
        with pytest.raises(ConnectionResetError):
            await stream[0].read(1)
        stream[1].close()
