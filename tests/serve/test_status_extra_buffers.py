"""``paddler-tui status`` prints each agent's extra-buffers verdict where the monitor socket has
one, and stays as it was against a balancer without the socket."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from paddler_tui.protocol.agent_socket import ExtraBuffers
from paddler_tui.server.serve_command import run_status
from tests.serve.recorded_state import record
from tests.support.fake_balancer import FakeBalancer, FakeScript
from tests.support.monitor_script import PROBE_CRASHED, PROBE_PASSED

MODEL = "/models/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PADDLER_TUI_STATE_DIR", str(tmp_path))
    yield


def test_status_prints_each_verdict_under_its_agent(capsys: pytest.CaptureFixture[str]) -> None:
    script = FakeScript(
        live_monitor=True,
        extra_buffers={
            "a1": ExtraBuffers(enabled=False, reason=PROBE_CRASHED),
            "a2": ExtraBuffers(enabled=True, reason=PROBE_PASSED),
        },
    )
    with FakeBalancer(script) as fake:
        record(fake)
        assert run_status(api_key=None) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-4:] == [
        f"agent alpha: 0/2 slots busy, Applied, model {MODEL}",
        f"  extra buffers off: {PROBE_CRASHED}",
        f"agent beta: 0/2 slots busy, Applied, model {MODEL}",
        f"  extra buffers on: {PROBE_PASSED}",
    ]


def test_an_agent_without_a_verdict_gets_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    script = FakeScript(
        live_monitor=True, extra_buffers={"a2": ExtraBuffers(enabled=True, reason="")}
    )
    with FakeBalancer(script) as fake:
        record(fake)
        assert run_status(api_key=None) == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        f"agent alpha: 0/2 slots busy, Applied, model {MODEL}",
        f"agent beta: 0/2 slots busy, Applied, model {MODEL}",
        "  extra buffers on",
    ]


def test_without_a_monitor_socket_status_is_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    with FakeBalancer() as fake:  # Paddler: no monitor socket
        record(fake)
        assert run_status(api_key=None) == 0
    output = capsys.readouterr().out
    assert f"agent beta: 0/2 slots busy, Applied, model {MODEL}" in output
    assert "extra buffers" not in output
