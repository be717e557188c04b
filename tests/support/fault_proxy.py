"""A fault-injecting TCP proxy for tests, in the spirit of toxiproxy.

:class:`FaultProxy` listens on ``127.0.0.1:0`` and forwards every connection to one upstream
``host:port``. Faults are switched on and off while connections are open:

- :meth:`~FaultProxy.latency`: each chunk is written ``seconds`` after it was read. Chunks wait
  in a queue with their due times, so delays overlap (a chunk read at t goes out at
  t + latency) instead of adding up, and throughput stays what the endpoints make it.
- :meth:`~FaultProxy.bandwidth`: at most that many bytes per second, per connection and
  direction.
- :meth:`~FaultProxy.blackhole` / :meth:`~FaultProxy.heal`: a silent partition. Nothing is
  forwarded and nothing is closed; the proxy stops reading, so data waits in the socket buffers
  and nothing is lost, as TCP would retransmit it once the partition is over. New connections
  are accepted (the client's connect succeeds, as against a listening kernel) but are not dialed
  upstream until the partition heals, so their handshakes hang as a SYN that cannot get through
  would; one the client gives up on meanwhile never reaches the server.
- :meth:`~FaultProxy.reset`: every open connection is aborted with an RST on both sides.

"upstream" is client → server, "downstream" server → client. :class:`ThreadedFaultProxy` runs a
proxy on an event loop of its own in a thread, for tests whose loop blocks (the cluster helpers
of ``tests/support/cluster.py`` make blocking HTTP calls while the agent's traffic must flow).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

Direction = Literal["upstream", "downstream", "both"]

CHUNK_BYTES = 64 * 1024
# A bandwidth-limited direction writes pieces of about this many seconds' worth of bytes.
BANDWIDTH_STEP_S = 0.02
# What a direction reads ahead of its writes (latency and bandwidth queue data): beyond this
# it stops reading, so a slow direction pushes back on its sender instead of filling memory.
MAX_QUEUED_BYTES = 4 * 1024 * 1024
THREAD_CALL_TIMEOUT_S = 10.0

T = TypeVar("T")


def abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Close at once with an RST (SO_LINGER 0), not a FIN: what a crash or a reset looks like."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Faults:
    """What one direction of the proxy does to the bytes that cross it, and how many did."""

    def __init__(self) -> None:
        self.latency_s = 0.0
        self.bytes_per_second: float | None = None
        # Cleared while the direction is blackholed.
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.forwarded = 0


class _PeerReset(Exception):
    """The source of a direction was reset; the link goes down with RSTs on both sides."""


class _Pump:
    """One direction of one connection: a reader that queues chunks with due times, and a
    writer that sends each when it is due, flowing and within the bandwidth."""

    def __init__(
        self,
        faults: _Faults,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        held: bytes = b"",
    ) -> None:
        self._faults = faults
        self._reader = reader
        self._writer = writer
        # (due time, chunk): b"" is the end of the stream, None a reset of the source.
        self._queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()
        if held:
            self._queue.put_nowait((0.0, held))
        self._queued_bytes = len(held)
        self._dequeued = asyncio.Event()
        self._next_send = 0.0

    async def read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._faults.flowing.wait()
            while self._queued_bytes >= MAX_QUEUED_BYTES:
                self._dequeued.clear()
                await self._dequeued.wait()
            try:
                chunk: bytes | None = await self._reader.read(CHUNK_BYTES)
            except OSError:
                chunk = None
            self._queue.put_nowait((loop.time() + self._faults.latency_s, chunk))
            if not chunk:
                return
            self._queued_bytes += len(chunk)

    async def write(self) -> None:
        while True:
            due, chunk = await self._queue.get()
            await self._until(due)
            if chunk is None:
                abort_with_rst(self._writer)
                raise _PeerReset
            if not chunk:
                # A half-close stays a half-close: the other direction may still be talking.
                if self._writer.can_write_eof():
                    self._writer.write_eof()
                return
            await self._send(chunk)
            self._queued_bytes -= len(chunk)
            self._dequeued.set()

    async def _until(self, due: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Checked again after each sleep: a partition may have begun meanwhile.
            await self._faults.flowing.wait()
            delay = due - loop.time()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    async def _send(self, chunk: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(chunk)
        while view:
            rate = self._faults.bytes_per_second
            size = len(view) if rate is None else max(1, int(rate * BANDWIDTH_STEP_S))
            if rate is not None:
                await self._until(self._next_send)
            piece, view = view[:size], view[size:]
            self._writer.write(piece)
            await self._writer.drain()
            self._faults.forwarded += len(piece)
            if rate is not None:
                self._next_send = max(loop.time(), self._next_send) + len(piece) / rate


class _Link:
    """One client connection and, once the path is clear, its upstream connection."""

    def __init__(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.client_reader = client_reader
        self.writers = [client_writer]
        task = asyncio.current_task()
        assert task is not None
        self.task = task

    def abort(self, *, rst: bool) -> None:
        for writer in self.writers:
            if rst:
                abort_with_rst(writer)
            else:
                writer.transport.abort()


class FaultProxy:
    """A TCP proxy from ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` with faults.

    Use it as ``async with FaultProxy(host, port) as proxy:`` (or :meth:`start` and
    :meth:`stop`); :attr:`addr` is where clients dial. Fault methods are plain calls that take
    effect at once, on open connections as on new ones, and must run on the proxy's loop.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, host: str = "127.0.0.1") -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.host = host
        self.port = 0
        self._faults = {"upstream": _Faults(), "downstream": _Faults()}
        # Set while no direction is blackholed: new connections are dialed upstream only then.
        self._clear = asyncio.Event()
        self._clear.set()
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self.accepted = 0
        """Client connections accepted, including those held by a partition."""
        self.refused = 0
        """Client connections aborted because the upstream could not be dialed."""
        self.resets = 0
        """Connections aborted by :meth:`reset`."""
        self.errors: list[BaseException] = []
        """Unexpected failures of the proxy itself; :meth:`stop` raises the first."""

    @classmethod
    def to(cls, addr: str) -> FaultProxy:
        """A proxy to ``"host:port"``."""
        host, port = addr.rsplit(":", 1)
        return cls(host, int(port))

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def active(self) -> int:
        """Client connections open right now."""
        return len(self._links)

    @property
    def bytes_upstream(self) -> int:
        """Bytes written to the upstream so far (client → server)."""
        return self._faults["upstream"].forwarded

    @property
    def bytes_downstream(self) -> int:
        """Bytes written to clients so far (server → client)."""
        return self._faults["downstream"].forwarded

    def __repr__(self) -> str:
        # What an assertion message about the proxy needs.
        return (
            f"FaultProxy({self.addr} -> {self.upstream_host}:{self.upstream_port},"
            f" accepted={self.accepted}, active={self.active}, refused={self.refused},"
            f" resets={self.resets}, up={self.bytes_upstream} B, down={self.bytes_downstream} B)"
        )

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        for link in links:
            link.abort(rst=False)
            link.task.cancel()
        await asyncio.gather(*(link.task for link in links), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self.errors:
            raise self.errors[0]

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # Faults.

    def _directions(self, direction: Direction) -> list[_Faults]:
        if direction == "both":
            return list(self._faults.values())
        return [self._faults[direction]]

    def latency(self, seconds: float, direction: Direction = "both") -> None:
        """Delay every chunk read from now on by ``seconds`` (0 turns it off)."""
        for faults in self._directions(direction):
            faults.latency_s = seconds

    def bandwidth(self, bytes_per_second: float | None, direction: Direction = "both") -> None:
        """Limit each connection's direction to ``bytes_per_second`` (None: no limit)."""
        for faults in self._directions(direction):
            faults.bytes_per_second = bytes_per_second

    def blackhole(self, direction: Direction = "both") -> None:
        """Forward nothing (in ``direction``) and close nothing, until :meth:`heal`."""
        for faults in self._directions(direction):
            faults.flowing.clear()
        self._clear.clear()

    def heal(self, direction: Direction = "both") -> None:
        """End the partition (in ``direction``): held data and held connections go through."""
        for faults in self._directions(direction):
            faults.flowing.set()
        if all(faults.flowing.is_set() for faults in self._faults.values()):
            self._clear.set()

    def reset(self) -> int:
        """Abort every open connection with an RST to both sides; how many there were."""
        links = list(self._links)
        for link in links:
            link.abort(rst=True)
            link.task.cancel()
        self.resets += len(links)
        return len(links)

    def clear(self) -> None:
        """Every fault off: no latency, no bandwidth limit, no partition."""
        self.latency(0)
        self.bandwidth(None)
        self.heal()

    # Forwarding.

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        self.accepted += 1
        link = _Link(client_reader, client_writer)
        self._links.add(link)
        try:
            await self._forward(link)
        except asyncio.CancelledError:
            pass  # reset() or stop() has aborted the connections already
        except Exception as error:
            self.errors.append(error)
            link.abort(rst=True)
        finally:
            self._links.discard(link)
            for writer in link.writers:
                writer.close()

    async def _hold(self, link: _Link) -> bytes | None:
        """Wait for the partition to heal: what the client sent meanwhile, or None if it left.

        A connection attempt that times out in a real partition never reaches the server, so a
        client that closes (or resets) while held is dropped without dialing upstream.
        """
        held = bytearray()
        while not self._clear.is_set():
            if len(held) >= MAX_QUEUED_BYTES:
                await self._clear.wait()
                break
            reading = asyncio.ensure_future(link.client_reader.read(CHUNK_BYTES))
            clearing = asyncio.ensure_future(self._clear.wait())
            try:
                await asyncio.wait({reading, clearing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # Cancelling a waiting StreamReader.read loses nothing: data stays buffered.
                reading.cancel()
                clearing.cancel()
            if reading.done() and not reading.cancelled():
                try:
                    chunk = reading.result()
                except OSError:
                    return None
                if not chunk:
                    return None
                held += chunk
        return bytes(held)

    async def _forward(self, link: _Link) -> None:
        held = await self._hold(link)
        if held is None:
            link.abort(rst=False)
            return
        try:
            server_reader, server_writer = await asyncio.open_connection(
                self.upstream_host, self.upstream_port
            )
        except OSError:
            # The closest a proxy can come to "connection refused" once it has accepted.
            self.refused += 1
            link.abort(rst=True)
            return
        (client_writer,) = link.writers
        link.writers.append(server_writer)
        up = _Pump(self._faults["upstream"], link.client_reader, server_writer, held)
        down = _Pump(self._faults["downstream"], server_reader, client_writer)
        try:
            async with asyncio.TaskGroup() as group:
                for coroutine in (up.read(), up.write(), down.read(), down.write()):
                    group.create_task(coroutine)
        except* (_PeerReset, OSError):
            # One side reset (or a write found it gone): the other side hears an RST too.
            link.abort(rst=True)


class ThreadedFaultProxy:
    """A :class:`FaultProxy` on its own event loop in a daemon thread, driven from any thread.

    ``with ThreadedFaultProxy.to(addr) as proxy:`` starts it and stops it; the fault methods
    and counters are the proxy's. For tests that block their own loop, or have none.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.proxy = FaultProxy(upstream_host, upstream_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )

    @classmethod
    def to(cls, addr: str) -> ThreadedFaultProxy:
        host, port = addr.rsplit(":", 1)
        return cls(host, int(port))

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(THREAD_CALL_TIMEOUT_S)

    def start(self) -> ThreadedFaultProxy:
        self._thread.start()
        self._run(self.proxy.start())
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            self._run(self.proxy.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> ThreadedFaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return repr(self.proxy)

    @property
    def addr(self) -> str:
        return self.proxy.addr

    @property
    def accepted(self) -> int:
        return self.proxy.accepted

    @property
    def refused(self) -> int:
        return self.proxy.refused

    @property
    def resets(self) -> int:
        return self.proxy.resets

    @property
    def active(self) -> int:
        return self.proxy.active

    @property
    def bytes_upstream(self) -> int:
        return self.proxy.bytes_upstream

    @property
    def bytes_downstream(self) -> int:
        return self.proxy.bytes_downstream

    def _on_loop(self, action: Callable[[], T]) -> T:
        """Run ``action`` on the proxy's loop (its events and tasks belong to it) and wait."""

        async def call() -> T:
            return action()

        return self._run(call())

    def latency(self, seconds: float, direction: Direction = "both") -> None:
        self._on_loop(lambda: self.proxy.latency(seconds, direction))

    def bandwidth(self, bytes_per_second: float | None, direction: Direction = "both") -> None:
        self._on_loop(lambda: self.proxy.bandwidth(bytes_per_second, direction))

    def blackhole(self, direction: Direction = "both") -> None:
        self._on_loop(lambda: self.proxy.blackhole(direction))

    def heal(self, direction: Direction = "both") -> None:
        self._on_loop(lambda: self.proxy.heal(direction))

    def reset(self) -> int:
        return self._on_loop(self.proxy.reset)

    def clear(self) -> None:
        self._on_loop(self.proxy.clear)
