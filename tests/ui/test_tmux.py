"""In a real terminal (tmux): with nothing running, ``paddler-tui`` starts the embedded default,
answers a question, and stops what it started on exit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.ports import free_port

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 300.0


class Tmux:
    """A tmux server of its own (``-L``), so the user's sessions are never touched."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"paddler-tui-test-{os.getpid()}"
        self.env = env

    def __call__(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *arguments],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tui").stdout

    def wait_for(self, ready: Callable[[str], bool], what: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if ready(screen):
                return screen
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}; the screen:\n{self.screen()}")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is needed for the real-terminal test (`make test` installs it)")
    environment = dict(os.environ)
    for kind in ("CONFIG", "DATA", "LOG", "STATE"):
        environment[f"PADDLER_TUI_{kind}_DIR"] = str(tmp_path / kind.lower())
    environment["PADDLER_CACHE_DIR"] = str(tmp_path / "cache")
    environment["TERM"] = "xterm-256color"
    # Run from inside tmux, the variable would make tmux refuse to start a nested session.
    environment.pop("TMUX", None)
    yield environment
    # Whatever a failed run left behind.
    subprocess.run(
        [sys.executable, "-m", "paddler_tui", "stop"],
        env=environment,
        capture_output=True,
        check=False,
        timeout=60,
    )


def test_embedded_default_answers_in_a_real_terminal(env: dict[str, str], tmp_path: Path) -> None:
    # The "default" addresses come from the config, so the test never meets a real 8060/8061.
    inference, management = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        f'inference_addr = "{inference}"\nmanagement_addr = "{management}"\n'
        "cursor_blink = false\n[chat]\nmax_tokens = 32\n"
    )
    tmux = Tmux(env)
    command = f"{sys.executable} -m paddler_tui"
    try:
        started = tmux("new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", command)
        assert started.returncode == 0, started.stderr
        tmux.wait_for(lambda s: "Ask something" in s, "the chat", STARTUP_TIMEOUT_S)
        tmux("send-keys", "-t", "tui", "-l", "What is the capital of France?")
        tmux("send-keys", "-t", "tui", "Enter")
        # A capture can catch the terminal mid-repaint, so wait for the whole picture.
        screen = tmux.wait_for(
            lambda s: "tok/s" in s and "What is the capital of France?" in s and "agent-1 · " in s,
            "the answer",
            120,
        )
        assert f"{inference} (embedded)" in screen

        tmux("send-keys", "-t", "tui", "C-q")
        deadline = time.monotonic() + 60
        while tmux("has-session", "-t", "tui").returncode == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert tmux("has-session", "-t", "tui").returncode != 0, tmux.screen()
    finally:
        tmux("kill-server")
    status = subprocess.run(
        [sys.executable, "-m", "paddler_tui", "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert status.returncode == 1, status.stdout
    assert "not running" in status.stdout
