"""The supervision rules with a fake clock, and the asyncio shell with tiny real processes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from paddler_tui.server.agent_supervisor import (
    AgentRecord,
    AgentSupervisor,
    GiveUp,
    LaunchedAgent,
    Restart,
    RestartPolicy,
    RestartRules,
    exit_tail,
    read_run_output,
)
from tests.support.clocks import ManualClock

# The policy: one exit at a time, the clock moved by hand.


def run(policy: RestartPolicy, clock: ManualClock, seconds: float) -> Restart | GiveUp:
    """Start, run ``seconds``, exit; the decision, after waiting out any backoff."""
    policy.started(clock.now)
    clock.now += seconds
    decision = policy.exited(clock.now)
    if isinstance(decision, Restart):
        clock.now += decision.delay_s
    return decision


def test_the_backoff_doubles_from_one_second_up_to_thirty() -> None:
    policy, clock = RestartPolicy(), ManualClock()
    # 20 s runs: never healthy, and never 5 exits within 60 s.
    delays = [run(policy, clock, 20) for _ in range(9)]
    assert delays == [Restart(s) for s in (1, 2, 4, 8, 16, 30, 30, 30, 30)]


def test_sixty_seconds_of_healthy_service_reset_the_backoff() -> None:
    policy, clock = RestartPolicy(), ManualClock()
    assert [run(policy, clock, 20) for _ in range(3)] == [Restart(1), Restart(2), Restart(4)]
    assert run(policy, clock, 59.9) == Restart(8)  # not quite healthy
    assert run(policy, clock, 60) == Restart(1)
    assert run(policy, clock, 20) == Restart(2)
    assert run(policy, clock, 3600) == Restart(1)


def test_the_fifth_exit_within_sixty_seconds_is_a_crash_loop() -> None:
    policy, clock = RestartPolicy(), ManualClock()
    # Exits at 0.1, 1.2, 3.3, 7.4 and 15.5 s: the backoff alone lets five happen in 16 s.
    assert [run(policy, clock, 0.1) for _ in range(4)] == [Restart(s) for s in (1, 2, 4, 8)]
    assert run(policy, clock, 0.1) == GiveUp(5, 60)
    assert policy.gave_up
    with pytest.raises(RuntimeError):
        policy.started(clock.now)


def test_exits_older_than_the_window_do_not_count() -> None:
    policy, clock = RestartPolicy(), ManualClock()
    first_exit = clock.now + 10
    for _ in range(4):
        run(policy, clock, 10)  # exits at 10, 21, 33, 47 s
    # The fifth exit 60 s after the first: the first has left the window.
    policy.started(clock.now)
    clock.now = first_exit + 60
    assert policy.exited(clock.now) == Restart(16)
    # One moment less, and it would have been the fifth within 60 s.
    policy, clock = RestartPolicy(), ManualClock()
    first_exit = clock.now + 10
    for _ in range(4):
        run(policy, clock, 10)
    policy.started(clock.now)
    assert policy.exited(first_exit + 59.999) == GiveUp(5, 60)


def test_a_slowly_failing_agent_is_retried_for_ever() -> None:
    policy, clock = RestartPolicy(), ManualClock()
    for _ in range(100):
        assert isinstance(run(policy, clock, 16), Restart)  # at most 4 exits in any 60 s


def test_other_rules() -> None:
    rules = RestartRules(
        first_backoff_s=0.5, max_backoff_s=3, crash_loop_exits=3, crash_loop_window_s=10
    )
    policy, clock = RestartPolicy(rules), ManualClock()
    assert [run(policy, clock, 0) for _ in range(3)] == [Restart(0.5), Restart(1), GiveUp(3, 10)]


def test_a_record_counts_restarts_and_words_its_state() -> None:
    clock = ManualClock()
    record = AgentRecord("agent-1", Path("/log/agent-1.log"), RestartPolicy())
    record.started(101, clock.now)
    first = record.snapshot(clock.now)
    assert (first.state, first.pid, first.restarts, first.last_exit) == ("running", 101, 0, None)
    assert first.log_file == "/log/agent-1.log"
    clock.now += 5
    assert record.exited("killed by SIGSEGV", clock.now) == Restart(1)
    clock.now += 0.25
    waiting = record.snapshot(clock.now)
    assert (waiting.state, waiting.pid, waiting.last_exit) == (
        "restarting",
        None,
        "killed by SIGSEGV",
    )
    assert waiting.next_restart_in_ms == 750
    clock.now += 0.75
    record.started(102, clock.now)
    again = record.snapshot(clock.now)
    assert (again.state, again.pid, again.restarts, again.next_restart_in_ms) == (
        "running", 102, 1, None,
    )  # fmt: skip
    assert again.last_exit == "killed by SIGSEGV"
    assert record.failure is None
    for pid in (103, 104, 105):
        decision = record.exited("exited with status 1", clock.now)
        assert isinstance(decision, Restart)
        clock.now += decision.delay_s
        record.started(pid, clock.now)
    assert record.exited("exited with status 1", clock.now) == GiveUp(5, 60)
    down = record.snapshot(clock.now)
    assert (down.state, down.pid, down.restarts, down.next_restart_in_ms) == (
        "gave_up", None, 4, None,
    )  # fmt: skip
    assert record.failure == (
        "agent-1 exited with status 1 (5 exits within 60 s, a crash loop: restarts stopped); "
        "see /log/agent-1.log"
    )


# What of an agent's log follows its exit in serve's log.

DUMP = [
    "Fatal Python error: Segmentation fault",
    "",
    "Thread 0x00007f0000000001 (most recent call first):",
    '  File "/app/engine.py", line 217 in _run',
    "",
    "Current thread 0x00007f0000000002 (most recent call first):",
    '  File "/usr/lib/python3.11/selectors.py", line 468 in select',
]


def test_a_crash_is_quoted_from_just_before_its_dump() -> None:
    text = "\n".join(
        [*(f"loading {n}" for n in range(30)), *DUMP, *(f"  frame {n}" for n in range(60))]
    )
    tail = exit_tail(text)
    assert tail[:6] == [*(f"loading {n}" for n in range(25, 30)), DUMP[0]]
    assert DUMP[3] in tail
    assert len(tail) == 40
    assert "" not in tail


def test_any_other_end_is_quoted_by_its_last_lines() -> None:
    text = "\n".join(f"line {n}" for n in range(50)) + "\n\n"
    assert exit_tail(text) == [f"line {n}" for n in range(30, 50)]
    assert exit_tail("") == []


def test_only_this_run_is_read(tmp_path: Path) -> None:
    log = tmp_path / "agent-1.log"
    log.write_text("an earlier run\n")
    offset = log.stat().st_size
    with log.open("a") as file:
        file.write("this run\n")
    assert read_run_output(log, offset) == "this run\n"
    assert read_run_output(tmp_path / "missing.log", 0) == ""
    log.write_text("rotated\n")  # shorter than the offset: read what there is
    assert read_run_output(log, offset) == "rotated\n"


# The shell, with shell commands for agents.

FAST = RestartRules(
    first_backoff_s=0.01, max_backoff_s=0.04, crash_loop_exits=5, crash_loop_window_s=30
)


class ShellLauncher:
    """Agents that are ``sh -c`` scripts, one per agent, logging into ``log_dir``."""

    def __init__(self, log_dir: Path, *scripts: str) -> None:
        self.log_dir = log_dir
        self.scripts = scripts
        self.launched: list[LaunchedAgent] = []

    @property
    def count(self) -> int:
        return len(self.scripts)

    def name(self, index: int) -> str:
        return f"agent-{index}"

    def log_path(self, index: int) -> Path:
        return self.log_dir / f"agent-{index}.log"

    async def launch(self, index: int) -> LaunchedAgent:
        args = ("sh", "-c", self.scripts[index - 1])
        with self.log_path(index).open("ab") as log:
            offset = os.fstat(log.fileno()).st_size
            process = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        launched = LaunchedAgent(process, args, offset)
        self.launched.append(launched)
        return launched


async def wait_for(condition: Callable[[], object], timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def is_zombie_or_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def reaped(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def test_a_crash_loop_is_restarted_four_times_then_left_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="paddler_tui.server.agent_supervisor")
    launcher = ShellLauncher(tmp_path, "echo loading; echo 'cannot go on' >&2; exit 3", "sleep 30")
    changes: list[str] = []
    supervisor = AgentSupervisor(
        launcher, rules=FAST, on_change=lambda: changes.append(supervisor.records[0].state)
    )
    supervisor.start()
    try:
        await wait_for(lambda: supervisor.records[0].state == "gave_up")
        failing = [
            launched for launched in launcher.launched if launched.args[2].startswith("echo")
        ]
        assert len(failing) == 5
        for launched in failing:
            assert launched.process.returncode == 3
            assert reaped(launched.process.pid)
        local = supervisor.snapshot()
        assert (local[0].state, local[0].restarts, local[0].last_exit) == (
            "gave_up", 4, "exited with status 3",
        )  # fmt: skip
        assert (local[1].state, local[1].restarts) == ("running", 0)
        assert changes.count("restarting") == 4 and changes[-1] == "gave_up"
    finally:
        await supervisor.stop()
    exits = [r.getMessage() for r in caplog.records if "exited with status 3" in r.getMessage()]
    assert len(exits) == 5
    assert "restarting in 0.01 s" in exits[0] and "restarting in 0.04 s" in exits[3]
    assert "a crash loop: restarts stopped" in exits[4]
    # Each exit quotes only its own run's lines, after the cause.
    assert exits[4].endswith(
        f"The end of {tmp_path / 'agent-1.log'}:\n    loading\n    cannot go on"
    )
    assert [r.levelname for r in caplog.records if "status 3" in r.getMessage()][-1] == "ERROR"


async def test_stop_ends_running_agents_and_backoffs_without_restarting(tmp_path: Path) -> None:
    # agent-2 waits out a long backoff when stop comes.
    rules = RestartRules(first_backoff_s=30)
    launcher = ShellLauncher(tmp_path, "sleep 30", "exit 1")
    supervisor = AgentSupervisor(launcher, rules=rules)
    supervisor.start()
    await wait_for(lambda: supervisor.records[1].state == "restarting")
    running = supervisor.records[0].pid
    assert running is not None and supervisor.pids == [running]
    async with asyncio.timeout(5):
        await supervisor.stop()
    assert len(launcher.launched) == 2
    assert launcher.launched[0].process.returncode == -signal.SIGTERM
    assert reaped(running)
    assert supervisor.pids == []


async def test_an_agent_deaf_to_sigterm_is_killed(tmp_path: Path) -> None:
    launcher = ShellLauncher(tmp_path, "trap '' TERM; echo ready; while :; do sleep 0.05; done")
    supervisor = AgentSupervisor(launcher)
    supervisor.start()
    await wait_for(lambda: "ready" in (tmp_path / "agent-1.log").read_text(errors="replace")
                   if (tmp_path / "agent-1.log").exists() else False)  # fmt: skip
    await supervisor.stop(timeout_s=0.3)
    assert launcher.launched[0].process.returncode == -signal.SIGKILL


async def test_an_exit_signalled_by_begin_stop_is_not_a_crash(tmp_path: Path) -> None:
    launcher = ShellLauncher(tmp_path, "sleep 30")
    supervisor = AgentSupervisor(launcher, rules=FAST)
    supervisor.start()
    await wait_for(lambda: supervisor.records[0].pid is not None)
    supervisor.begin_stop()  # as serve does on SIGINT, which reached the agent too
    pid = supervisor.records[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGINT)
    await asyncio.sleep(0.2)
    assert len(launcher.launched) == 1 and supervisor.records[0].last_exit is None
    await supervisor.stop()


async def test_an_agent_that_cannot_be_started_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Missing(ShellLauncher):
        async def launch(self, index: int) -> LaunchedAgent:
            raise FileNotFoundError(2, "No such file or directory", "/gone/python")

    supervisor = AgentSupervisor(Missing(tmp_path, ""), rules=FAST)
    supervisor.start()
    await wait_for(lambda: supervisor.records[0].state == "gave_up")
    await supervisor.stop()
    assert supervisor.records[0].last_exit == (
        "could not start: [Errno 2] No such file or directory: '/gone/python'"
    )
    assert "agent-1 could not start" in caplog.text
