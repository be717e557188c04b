"""The TUI's embedded start against a real ``serve --detach`` whose agent keeps dying of
SIGSEGV: once serve gives up on it, the outcome names the signal and the crash loop and carries
the end of that agent's log, faulthandler's stacks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from paddler_tui.server.serve_state import ServeState
from paddler_tui.ui.embedded import EmbeddedCluster
from tests.support.polling import poll_until
from tests.support.ports import free_port

FAULT = "Fatal Python error: Segmentation fault"


class StalledModelServer:
    """An HTTP server whose model download starts and never progresses: the agent waits in it
    until the test kills the agent, as llama.cpp would crash it while loading."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stalled.gguf"
        self.requested = threading.Event()
        self.requests = 0  # one per agent that started downloading
        self._connections: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(connection)
            connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 1000000000\r\n\r\nGGUF"
            )
            self.requests += 1
            self.requested.set()

    def wait_for_requests(self, count: int, timeout: float = 60) -> None:
        poll_until(lambda: self.requests >= count, timeout=timeout, what=f"{count} downloads")

    def close(self) -> None:
        self._listener.close()
        for connection in self._connections:
            connection.close()


@pytest.fixture
def logs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Every directory of the services (which inherit this environment) in ``tmp_path``."""
    for kind in ("STATE", "LOG", "DATA", "CACHE"):
        monkeypatch.setenv(f"PADDLER_TUI_{kind}_DIR", str(tmp_path / kind.lower()))
    monkeypatch.setenv("PADDLER_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path / "log"


async def agent_pid(not_one_of: set[int]) -> int:
    """The pid of the agent running now, once it is a new one."""
    while True:
        state = ServeState.read()
        if state is not None and state.agent_pids and state.agent_pids[0] not in not_one_of:
            return state.agent_pids[0]
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_an_agent_crash_loop_is_explained_with_its_log(logs: Path) -> None:
    """serve restarts the agent after each crash; the fifth crash within a minute is a crash
    loop, and only that fails the start (the services are stopped: a retry starts afresh)."""
    server = StalledModelServer()
    cluster = EmbeddedCluster(
        f"127.0.0.1:{free_port()}",
        f"127.0.0.1:{free_port()}",
        serve_arguments=["--model", server.url],
    )
    crashed: set[int] = set()
    try:
        start = asyncio.create_task(cluster.start())
        for crash in range(1, 6):
            # Crashed while downloading, as llama.cpp would crash it while loading.
            await asyncio.to_thread(server.wait_for_requests, crash)
            pid = await asyncio.wait_for(agent_pid(crashed), 60)
            os.kill(pid, signal.SIGSEGV)
            crashed.add(pid)
            assert not start.done(), start.result()
        outcome = await asyncio.wait_for(start, 60)
    finally:
        server.close()
        await asyncio.to_thread(cluster.stop)
    assert not outcome.ok
    failure = outcome.failure
    assert failure is not None
    agent_log = logs / "agent-1.log"
    headline = "agent-1 killed by SIGSEGV (5 exits within 60 s, a crash loop: restarts stopped)"
    assert failure.reason == f"{headline}; see {agent_log}"
    assert failure.headline == headline
    assert failure.log_path == agent_log
    assert FAULT in failure.log_tail
    assert any("most recent call first" in line for line in failure.log_tail)
    # Stopped by the TUI, so nothing is left running.
    assert ServeState.read() is None
    assert not cluster.launched
