"""``serve`` supervises its agents, as a user sees it: a killed or crashed agent is reaped,
explained in serve's log and replaced; a crash loop stops the restarts and says so in the log,
``status`` and the monitor socket; ``serve --detach`` returns when an agent crash-loops on the
way up, and the balancer stays up."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from paddler_tui.client.monitor import monitor_updates
from paddler_tui.protocol.monitor import MonitorLocalAgent, MonitorUpdate
from tests.serve.test_embedded_start_failure import StalledModelServer
from tests.serve.test_serve import cli, raw_prompt
from tests.support.polling import poll_until
from tests.support.ports import free_port

FAULT = "Fatal Python error: Segmentation fault"
CRASH_LOOP = "5 exits within 60 s, a crash loop: restarts stopped"


class Served:
    """A ``serve --detach`` of this test, with what it records and logs."""

    def __init__(self, env: dict[str, str], tmp_path: Path) -> None:
        self.env = env
        self.inference = f"127.0.0.1:{free_port()}"
        self.management = f"127.0.0.1:{free_port()}"
        self.log_dir = tmp_path / "log"
        self.state_file = tmp_path / "state" / "serve.json"

    def arguments(self, *extra: str, agents: int = 2) -> list[str]:
        return [
            "serve", "--detach", "--agents", str(agents), "--slots", "1",
            "--inference-addr", self.inference, "--management-addr", self.management, *extra,
        ]  # fmt: skip

    def start(self) -> None:
        started = cli(self.env, *self.arguments())
        assert started.returncode == 0, started.stderr
        assert started.stderr == ""

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_file.read_text())
        return state

    def serve_log(self) -> str:
        return (self.log_dir / "serve.log").read_text(errors="replace")

    def registered(self) -> list[dict[str, Any]]:
        """The agents the balancer has, as its management API lists them."""
        response = httpx.get(f"http://{self.management}/api/v1/agents", timeout=10)
        agents: list[dict[str, Any]] = response.json()["agents"]
        return agents

    def serving(self, name: str, not_id: str | None = None) -> dict[str, Any] | None:
        """Agent ``name`` registered with its slot (another than ``not_id``), if it is."""
        for agent in self.registered():
            if agent["name"] == name and agent["id"] != not_id and agent["slots_total"] == 1:
                return agent
        return None

    def local_agents(self) -> dict[str, MonitorLocalAgent]:
        """serve's supervision of its agents, from the monitor socket's first frame."""

        async def first() -> MonitorUpdate:
            updates = monitor_updates(self.management)
            assert isinstance(updates, AsyncGenerator)
            try:
                return await anext(updates)
            finally:
                await updates.aclose()

        return {local.name: local for local in asyncio.run(first()).local_agents}

    def stop(self) -> None:
        assert cli(self.env, "stop").returncode == 0


def wait_until(condition: Callable[[], object], timeout: float = 90, what: str = "") -> None:
    poll_until(condition, timeout=timeout, what=what)


def a_zombie_child_of(pid: int, parent: int) -> bool:
    """Whether ``pid`` is a zombie that ``parent`` never reaped (gone, or reused, is fine)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0] == "Z" and int(fields[1]) == parent


@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Served:
    return Served(env, tmp_path)


@pytest.mark.slow
def test_a_killed_agent_is_reaped_explained_and_replaced(served: Served) -> None:
    served.start()
    old = served.local_agents()["agent-1"]
    old_registration = served.serving("agent-1")
    assert old.pid is not None and old_registration is not None
    assert (old.state, old.restarts, old.last_exit) == ("running", 0, None)

    os.kill(old.pid, signal.SIGKILL)
    wait_until(lambda: served.serving("agent-1", not_id=old_registration["id"]), what="agent-1")

    new = served.local_agents()["agent-1"]
    assert new.pid not in (None, old.pid)
    assert (new.state, new.restarts, new.last_exit) == ("running", 1, "killed by SIGKILL")
    assert not a_zombie_child_of(old.pid, served.state["pid"])
    assert served.state["agent_pids"] == [new.pid, served.local_agents()["agent-2"].pid]
    log = served.serve_log()
    assert f"agent-1 (pid {old.pid}) killed by SIGKILL after" in log
    assert "; restarting in 1 s." in log

    status = cli(served.env, "status").stdout.splitlines()
    line = next(index for index, text in enumerate(status) if text.startswith("agent agent-1:"))
    details = list(itertools.takewhile(lambda text: text.startswith("  "), status[line + 1 :]))
    assert "  restarts 1, last exit: killed by SIGKILL" in details
    assert "Done" in raw_prompt(served.inference)[-1]["Response"]["response"]["GeneratedToken"]
    served.stop()


@pytest.mark.slow
def test_a_segfaulted_agent_leaves_its_stacks_in_serve_log_and_is_replaced(
    served: Served,
) -> None:
    served.start()
    old = served.local_agents()["agent-2"]
    old_registration = served.serving("agent-2")
    assert old.pid is not None and old_registration is not None

    crashed_at = time.monotonic()
    os.kill(old.pid, signal.SIGSEGV)
    wait_until(lambda: served.serving("agent-2", not_id=old_registration["id"]), what="agent-2")
    replaced_s = time.monotonic() - crashed_at
    # For the README: from the crash to the new agent registered with its slots.
    print(f"\nSIGSEGV -> agent-2 replaced and registered with its slot in {replaced_s:.2f} s")

    new = served.local_agents()["agent-2"]
    assert (new.restarts, new.last_exit) == (1, "killed by SIGSEGV")
    assert not a_zombie_child_of(old.pid, served.state["pid"])
    log = served.serve_log()
    cause = log.index(f"agent-2 (pid {old.pid}) killed by SIGSEGV after")
    # faulthandler's dump follows the cause, quoted from agent-2's log.
    quoted = log[cause:].split("\n2")[0]  # up to serve's next timestamped line
    assert f"The end of {served.log_dir / 'agent-2.log'}:" in quoted
    assert f"    {FAULT}" in quoted
    assert "(most recent call first):" in quoted
    assert '    File "' in quoted
    served.stop()


@pytest.mark.slow
def test_a_crash_loop_stops_the_restarts_and_says_so(served: Served) -> None:
    served.start()
    killed: set[int] = set()
    for _ in range(5):
        # Each new process is killed as soon as it runs: five exits within 15 s of backoff.
        wait_until(
            lambda: served.local_agents()["agent-2"].pid not in (None, *killed), what="agent-2"
        )
        pid = served.local_agents()["agent-2"].pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    wait_until(lambda: served.local_agents()["agent-2"].state == "gave_up", what="giving up")

    local = served.local_agents()
    down = local["agent-2"]
    assert (down.pid, down.restarts, down.last_exit) == (None, 4, "killed by SIGKILL")
    assert down.next_restart_in_ms is None
    assert local["agent-1"].state == "running"
    agent_log = served.log_dir / "agent-2.log"
    failure = f"agent-2 killed by SIGKILL ({CRASH_LOOP}); see {agent_log}"
    assert f"paddler-tui serve: {failure}" in served.serve_log()
    assert served.state["gave_up"] == [failure]
    assert served.state["agent_pids"] == [local["agent-1"].pid]
    assert not any(a_zombie_child_of(pid, served.state["pid"]) for pid in killed)

    status = cli(served.env, "status").stdout
    assert (
        "agent agent-2: down, not restarted after a crash loop; restarts 4, last exit: "
        f"killed by SIGKILL; see {agent_log}"
    ) in status
    # The rest of the cluster serves on.
    assert [agent["name"] for agent in served.registered()] == ["agent-1"]
    assert "Done" in raw_prompt(served.inference)[-1]["Response"]["response"]["GeneratedToken"]
    served.stop()


@pytest.mark.slow
def test_detach_returns_when_an_agent_crash_loops_on_the_way_up(served: Served) -> None:
    """A model that never finishes downloading: the agent never gets ready, and the test kills
    it each time it starts downloading until serve gives up on it."""
    # The partial download goes to this test's cache, not the user's.
    for variable in ("PADDLER_TUI_CACHE_DIR", "PADDLER_CACHE_DIR"):
        served.env[variable] = str(served.log_dir.parent / "cache")
    server = StalledModelServer()
    detach = subprocess.Popen(
        [sys.executable, "-m", "paddler_tui", *served.arguments("--model", server.url, agents=1)],
        env=served.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        killed: set[int] = set()
        for crash in range(1, 6):
            server.wait_for_requests(crash)
            wait_until(
                lambda: served.local_agents()["agent-1"].pid not in (None, *killed),
                what="agent-1",
            )
            pid = served.local_agents()["agent-1"].pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        stdout, stderr = detach.communicate(timeout=90)
    finally:
        server.close()
        if detach.poll() is None:
            detach.kill()
            detach.communicate()
    assert detach.returncode == 0, stderr
    assert f"inference:  http://{served.inference}" in stdout
    failure = f"agent-1 killed by SIGKILL ({CRASH_LOOP}); see {served.log_dir / 'agent-1.log'}"
    assert stderr.strip() == f"paddler-tui serve: {failure}"

    status = cli(served.env, "status")
    assert status.returncode == 0
    assert "agent agent-1: down, not restarted after a crash loop; restarts 4" in status.stdout
    served.stop()
