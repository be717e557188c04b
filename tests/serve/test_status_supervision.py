"""``paddler-tui status`` lists serve's local agents with their restarts and last exit: those
registered under their balancer line, the others (restarting, down, starting) on lines of
their own; without a monitor socket the state file still tells of a crash loop."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paddler_tui.protocol.monitor import MonitorLocalAgent
from paddler_tui.server.serve_command import run_status
from tests.serve.recorded_state import record
from tests.support.fake_balancer import FakeBalancer, FakeScript

MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"
CRASH_LOOP = (
    "agent-3 exited with status 1 (5 exits within 60 s, a crash loop: restarts stopped); "
    "see /logs/agent-3.log"
)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PADDLER_TUI_STATE_DIR", str(tmp_path))
    yield


def test_every_local_agent_is_listed_with_its_restarts(capsys: pytest.CaptureFixture[str]) -> None:
    script = FakeScript(
        live_monitor=True,
        local_agents=[
            MonitorLocalAgent(name="alpha", pid=11),
            MonitorLocalAgent(name="beta", pid=12, restarts=2, last_exit="killed by SIGKILL"),
            MonitorLocalAgent(
                name="agent-3",
                state="gave_up",
                restarts=4,
                last_exit="exited with status 1",
                log_file="/logs/agent-3.log",
            ),
            MonitorLocalAgent(
                name="agent-4",
                state="restarting",
                restarts=1,
                last_exit="killed by SIGSEGV",
                next_restart_in_ms=1500,
            ),
            MonitorLocalAgent(name="agent-5", pid=15),
        ],
    )
    with FakeBalancer(script) as fake:
        record(fake, [CRASH_LOOP])
        assert run_status(api_key=None) == 0
    assert capsys.readouterr().out.splitlines()[-6:] == [
        f"agent alpha: 0/2 slots busy, Applied, model {MODEL}",
        f"agent beta: 0/2 slots busy, Applied, model {MODEL}",
        "  restarts 2, last exit: killed by SIGKILL",
        "agent agent-3: down, not restarted after a crash loop; restarts 4, last exit: "
        "exited with status 1; see /logs/agent-3.log",
        "agent agent-4: restarting in 1.5 s; restarts 1, last exit: killed by SIGSEGV",
        "agent agent-5: starting (pid 15)",
    ]


def test_without_a_monitor_socket_the_state_file_tells_of_a_crash_loop(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeBalancer() as fake:  # no monitor socket
        record(fake, [CRASH_LOOP])
        assert run_status(api_key=None) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"agent {CRASH_LOOP}"


def test_serve_help_states_the_supervision_rules() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paddler_tui", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = " ".join(result.stdout.split())
    assert "restarted after 1 s, 2 s, 4 s, ... up to 30 s; 60 s of running resets" in text
    assert "5 exits within 60 s are a crash loop" in text
