"""A native crash is never silent: the agent and the balancer leave every thread's stack in
their stderr, which ``serve`` and the embedded TUI send to their log files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.support.ports import free_port

FAULT = "Fatal Python error: Segmentation fault"


class Logged:
    """A ``paddler-tui`` command whose stderr is collected as it comes."""

    def __init__(self, *arguments: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "paddler_tui", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def wait_for(self, needle: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {needle!r} in: {''.join(self.lines)}"
            time.sleep(0.05)

    def crash(self) -> str:
        """SIGSEGV, as llama.cpp's kernels deliver it; everything it wrote to stderr."""
        os.kill(self.process.pid, signal.SIGSEGV)
        assert self.process.wait(timeout=30) == -signal.SIGSEGV
        self._reader.join(10)
        return "".join(self.lines)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PADDLER_TUI_STATE_DIR": str(tmp_path / "state")}


def test_an_agent_killed_by_sigsegv_leaves_its_stacks(tmp_path: Path) -> None:
    # Nothing listens there: the agent keeps dialling, its main thread in the event loop.
    agent = Logged(
        "agent", "--management-addr", f"127.0.0.1:{free_port()}", "--slots", "1",
        env=environment(tmp_path),
    )  # fmt: skip
    try:
        agent.wait_for("cannot reach the balancer:")
        stderr = agent.crash()
    finally:
        agent.close()
    assert FAULT in stderr
    assert "most recent call first" in stderr
    assert "asyncio" in stderr  # the stack of the thread that was running


def test_a_balancer_killed_by_sigsegv_leaves_its_stacks(tmp_path: Path) -> None:
    management = f"127.0.0.1:{free_port()}"
    balancer = Logged(
        "balancer", "--inference-addr", f"127.0.0.1:{free_port()}", "--management-addr", management,
        env=environment(tmp_path),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://{management}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert balancer.process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        stderr = balancer.crash()
    finally:
        balancer.close()
    assert FAULT in stderr
    assert "most recent call first" in stderr
