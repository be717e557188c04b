"""What every test that runs a real ``serve`` needs."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from paddler_tui.server.serve_state import is_alive


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    environment = dict(os.environ)
    environment["PADDLER_TUI_STATE_DIR"] = str(tmp_path / "state")
    environment["PADDLER_TUI_LOG_DIR"] = str(tmp_path / "log")
    yield environment
    # Whatever a failed test left behind is stopped by the recorded pids.
    state = tmp_path / "state" / "serve.json"
    if state.exists():
        recorded = json.loads(state.read_text())
        for pid in [recorded["pid"], *recorded["agent_pids"]]:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
