"""The TUI's embedded start against a real ``serve --detach`` whose agent dies of SIGSEGV: the
outcome names the signal and carries the end of that agent's log, faulthandler's stacks."""

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
from tests.serve.test_serve import free_port

FAULT = "Fatal Python error: Segmentation fault"


class StalledModelServer:
    """An HTTP server whose model download starts and never progresses: the agent waits in it
    until the test kills the agent, as llama.cpp would crash it while loading."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/stalled.gguf"
        self.requested = threading.Event()
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
            self.requested.set()

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


async def agent_pid() -> int:
    while True:
        state = ServeState.read()
        if state is not None and state.agent_pids:
            return state.agent_pids[0]
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_an_agent_crash_is_explained_with_its_log(logs: Path) -> None:
    server = StalledModelServer()
    cluster = EmbeddedCluster(
        f"127.0.0.1:{free_port()}",
        f"127.0.0.1:{free_port()}",
        serve_arguments=["--model", server.url],
    )
    try:
        start = asyncio.create_task(cluster.start())
        pid = await asyncio.wait_for(agent_pid(), 60)
        assert await asyncio.to_thread(server.requested.wait, 60), "the agent never downloaded"
        os.kill(pid, signal.SIGSEGV)
        outcome = await asyncio.wait_for(start, 60)
    finally:
        server.close()
        await asyncio.to_thread(cluster.stop)
    assert not outcome.ok
    failure = outcome.failure
    assert failure is not None
    agent_log = logs / "agent-1.log"
    assert failure.reason == f"agent-1 killed by SIGSEGV; see {agent_log}"
    assert failure.headline == "agent-1 killed by SIGSEGV"
    assert failure.log_path == agent_log
    assert FAULT in failure.log_tail
    assert any("most recent call first" in line for line in failure.log_tail)
