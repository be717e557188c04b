"""``paddler-tui serve`` (foreground and detached), ``status`` and ``stop``, as a user runs them."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from paddler_tui.models import default_model_path
from paddler_tui.protocol.model_source import LocalToAgent, Url
from paddler_tui.server.local_agents import model_source
from paddler_tui.server.serve_state import is_alive
from tests.support.polling import poll_until
from tests.support.ports import free_port


def cli(
    env: dict[str, str], *arguments: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paddler_tui", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def raw_prompt(inference: str) -> list[dict[str, Any]]:
    response = httpx.post(
        f"http://{inference}/api/v1/continue_from_raw_prompt",
        json={"max_tokens": 3, "raw_prompt": "Hello"},
        timeout=60,
    )
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


def test_model_sources() -> None:
    assert model_source("default") == LocalToAgent(value=str(default_model_path()))
    assert model_source("https://example.com/m.gguf") == Url(url="https://example.com/m.gguf")
    assert model_source("relative/m.gguf") == LocalToAgent(
        value=str(Path("relative/m.gguf").resolve())
    )


def test_status_and_stop_with_nothing_running(env: dict[str, str]) -> None:
    status = cli(env, "status")
    assert status.returncode == 1
    assert "not running" in status.stdout
    stop = cli(env, "stop")
    assert stop.returncode == 0
    assert "not running" in stop.stdout


@pytest.mark.slow
def test_detach_status_request_stop(env: dict[str, str], tmp_path: Path) -> None:
    inference, management = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    started = cli(
        env,
        "serve",
        "--detach",
        "--agents",
        "2",
        "--slots",
        "1",
        "--inference-addr",
        inference,
        "--management-addr",
        management,
    )
    assert started.returncode == 0, started.stderr
    assert f"inference:  http://{inference}" in started.stdout
    recorded = json.loads((tmp_path / "state" / "serve.json").read_text())
    pids = [recorded["pid"], *recorded["agent_pids"]]
    assert len(pids) == 3 and all(is_alive(pid) for pid in pids)

    again = cli(env, "serve", "--detach", "--inference-addr", inference)
    assert again.returncode == 1
    assert "already running" in again.stderr

    status = cli(env, "status")
    assert status.returncode == 0, status.stdout
    assert "agent agent-1: 0/1 slots busy, Applied" in status.stdout
    assert "agent agent-2: 0/1 slots busy, Applied" in status.stdout

    lines = raw_prompt(inference)
    assert "Done" in lines[-1]["Response"]["response"]["GeneratedToken"]
    assert lines[0]["Response"]["generated_by"] in {"agent-1", "agent-2"}

    stopped = cli(env, "stop")
    assert stopped.returncode == 0
    poll_until(lambda: not any(is_alive(pid) for pid in pids), timeout=5, what="serve's exit")
    assert not (tmp_path / "state" / "serve.json").exists()
    assert cli(env, "status").returncode == 1


@pytest.mark.slow
def test_foreground_serve_prints_addresses_and_stops_on_sigint(
    env: dict[str, str], tmp_path: Path
) -> None:
    inference, management = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paddler_tui",
            "serve",
            "--inference-addr",
            inference,
            "--management-addr",
            management,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.strip() == f"inference:  http://{inference}"
        assert "Done" in raw_prompt(inference)[-1]["Response"]["response"]["GeneratedToken"]
        agents = httpx.get(f"http://{management}/api/v1/agents", timeout=10).json()["agents"]
        assert [agent["slots_total"] for agent in agents] == [2]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_port_in_use_fails_with_a_clear_message(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(env, "serve", "--inference-addr", f"127.0.0.1:{port}", timeout=30)
    assert result.returncode == 1
    assert f"Unable to bind inference service to 127.0.0.1:{port}" in result.stderr


@pytest.mark.slow
def test_a_missing_model_fails_instead_of_waiting_forever(env: dict[str, str]) -> None:
    result = cli(
        env,
        "serve",
        "--inference-addr",
        f"127.0.0.1:{free_port()}",
        "--management-addr",
        f"127.0.0.1:{free_port()}",
        "--model",
        "/nonexistent/model.gguf",
        timeout=60,
    )
    assert result.returncode == 1
    assert "ModelFileDoesNotExist" in result.stderr
