"""Supervision of ``serve``'s local agents: every exit is reaped, explained and restarted.

Two layers. :class:`RestartPolicy` and :class:`AgentRecord` are the rules, pure and fed times by
their caller: a restart waits 1 s, then 2 s, 4 s, … up to 30 s; an agent that ran 60 s before
exiting starts over at 1 s; and the fifth exit within 60 s is a crash loop, after which the
agent is left down and says so. :class:`AgentSupervisor` is the asyncio shell around them: it
starts the processes, waits for each exit (which reaps the child, so none is left a zombie),
logs the cause with the end of the agent's log, sleeps the backoff, and stops on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from paddler_tui.protocol.monitor import LocalAgentState, MonitorLocalAgent
from paddler_tui.server.process_exit import describe_exit, last_lines

logger = logging.getLogger(__name__)

AGENT_STOP_TIMEOUT_S = 5.0
# What of an agent's own output follows its exit in serve's log: the last lines, or for a
# native crash faulthandler's dump from just before its head (the innermost frames come first).
EXIT_TAIL_LINES = 20
FATAL_ERROR = "Fatal Python error: "
LINES_BEFORE_DUMP = 5
DUMP_LINES = 40
# Enough for any tail worth showing, however much a run wrote.
READ_LIMIT = 64 * 1024


# The rules, without I/O.


@dataclass(frozen=True, kw_only=True)
class RestartRules:
    first_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    # A run this long was healthy: the next exit's backoff starts over.
    healthy_after_s: float = 60.0
    # This many exits within the window is a crash loop: restarts stop.
    crash_loop_exits: int = 5
    crash_loop_window_s: float = 60.0


@dataclass(frozen=True)
class Restart:
    delay_s: float


@dataclass(frozen=True)
class GiveUp:
    exits: int
    window_s: float

    def __str__(self) -> str:
        return f"{self.exits} exits within {self.window_s:g} s, a crash loop: restarts stopped"


class RestartPolicy:
    """When one agent restarts after an exit, or whether it does at all."""

    def __init__(self, rules: RestartRules | None = None) -> None:
        self.rules = rules or RestartRules()
        self._started_at: float | None = None
        self._failures = 0  # exits since the last healthy run: the backoff's exponent
        self._exits: deque[float] = deque()
        self.gave_up = False

    def started(self, now: float) -> None:
        if self.gave_up:
            raise RuntimeError("restarted after a crash loop")
        self._started_at = now

    def exited(self, now: float) -> Restart | GiveUp:
        rules = self.rules
        if self._started_at is not None and now - self._started_at >= rules.healthy_after_s:
            self._failures = 0
        self._started_at = None
        self._exits.append(now)
        while now - self._exits[0] >= rules.crash_loop_window_s:
            self._exits.popleft()
        if len(self._exits) >= rules.crash_loop_exits:
            self.gave_up = True
            return GiveUp(len(self._exits), rules.crash_loop_window_s)
        delay = rules.first_backoff_s * 2**self._failures
        self._failures += 1
        return Restart(min(delay, rules.max_backoff_s))


class AgentRecord:
    """One supervised agent as the monitor socket and ``status`` show it."""

    def __init__(self, name: str, log_file: Path, policy: RestartPolicy) -> None:
        self.name = name
        self.log_file = log_file
        self.policy = policy
        self.state: LocalAgentState = "running"
        self.pid: int | None = None
        self.launches = 0
        self.last_exit: str | None = None
        self.restart_at: float | None = None
        self.started_at: float | None = None
        self.gave_up: GiveUp | None = None

    @property
    def restarts(self) -> int:
        return max(0, self.launches - 1)

    def started(self, pid: int, now: float) -> None:
        self.policy.started(now)
        self.launches += 1
        self.state, self.pid, self.restart_at, self.started_at = "running", pid, None, now

    def exited(self, cause: str, now: float) -> Restart | GiveUp:
        """``cause`` is how it ended in words (``killed by SIGSEGV``)."""
        decision = self.policy.exited(now)
        self.last_exit, self.pid, self.started_at = cause, None, None
        if isinstance(decision, GiveUp):
            self.state, self.restart_at, self.gave_up = "gave_up", None, decision
        else:
            self.state, self.restart_at = "restarting", now + decision.delay_s
        return decision

    @property
    def failure(self) -> str | None:
        """After a crash loop, the sentence ``serve`` ends its say with: what, why, where."""
        if self.gave_up is None:
            return None
        return f"{self.name} {self.last_exit} ({self.gave_up}); see {self.log_file}"

    def snapshot(self, now: float) -> MonitorLocalAgent:
        return MonitorLocalAgent(
            name=self.name,
            pid=self.pid,
            state=self.state,
            restarts=self.restarts,
            last_exit=self.last_exit,
            next_restart_in_ms=max(0, round((self.restart_at - now) * 1000))
            if self.restart_at is not None
            else None,
            log_file=str(self.log_file),
        )


def exit_tail(text: str) -> list[str]:
    """What of a run's output explains its end: faulthandler's dump from just before its head
    when it crashed, else its last lines."""
    lines = [line.rstrip() for line in text.splitlines()]
    fatal = [index for index, line in enumerate(lines) if line.startswith(FATAL_ERROR)]
    if fatal:
        start = max(0, fatal[-1] - LINES_BEFORE_DUMP)
        return [line for line in lines[start:] if line.strip()][:DUMP_LINES]
    tail = last_lines(text, EXIT_TAIL_LINES)
    return tail.splitlines() if tail else []


# The asyncio shell.


class AgentProcess(Protocol):
    """What of :class:`asyncio.subprocess.Process` the supervisor uses."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    async def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass(frozen=True)
class LaunchedAgent:
    process: AgentProcess
    args: tuple[str, ...]
    # Where this run's output starts in its log, which earlier runs appended to.
    log_offset: int


class AgentLauncher(Protocol):
    @property
    def count(self) -> int: ...

    def name(self, index: int) -> str: ...

    def log_path(self, index: int) -> Path: ...

    async def launch(self, index: int) -> LaunchedAgent: ...


def read_run_output(path: Path, offset: int) -> str:
    """What ``path`` gained from ``offset`` on (its last :data:`READ_LIMIT` bytes at most)."""
    try:
        with path.open("rb") as log:
            end = log.seek(0, 2)
            start = offset if offset <= end else 0  # truncated meanwhile: all of it is new
            log.seek(max(start, end - READ_LIMIT))
            data = log.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


class AgentSupervisor:
    """Runs agents ``1..launcher.count`` until :meth:`stop`; ``on_change`` is called whenever
    an agent starts, exits or is given up on (its records then say how it fares)."""

    def __init__(
        self,
        launcher: AgentLauncher,
        *,
        rules: RestartRules | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._launcher = launcher
        self._clock = clock
        self._on_change = on_change
        self.records = [
            AgentRecord(launcher.name(index), launcher.log_path(index), RestartPolicy(rules))
            for index in range(1, launcher.count + 1)
        ]
        self.current: dict[int, LaunchedAgent] = {}
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._supervise(index), name=f"supervise {record.name}")
            for index, record in enumerate(self.records, 1)
        ]
        for task in self._tasks:
            task.add_done_callback(_log_failure)

    @property
    def pids(self) -> list[int]:
        return [record.pid for record in self.records if record.pid is not None]

    def snapshot(self) -> list[MonitorLocalAgent]:
        now = self._clock()
        return [record.snapshot(now) for record in self.records]

    def begin_stop(self) -> None:
        """From now on an exit is expected (serve got a signal its agents got too)."""
        self._stopping.set()

    async def stop(self, timeout_s: float = AGENT_STOP_TIMEOUT_S) -> None:
        """SIGTERM (the agents deregister), then SIGKILL whatever outlives ``timeout_s``."""
        self._stopping.set()
        self._signal_all(signal.SIGTERM)
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
        if pending:
            self._signal_all(signal.SIGKILL)
            await asyncio.wait(pending)

    def _signal_all(self, signum: int) -> None:
        for launched in self.current.values():
            _send(launched.process, signum)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    async def _supervise(self, index: int) -> None:
        record = self.records[index - 1]
        while not self._stopping.is_set():
            try:
                launched = await self._launcher.launch(index)
            except OSError as error:
                decision = record.exited(f"could not start: {error}", self._clock())
                logger.error("%s could not start: %s; %s", record.name, error, _next(decision))
                self._changed()
            else:
                self.current[index] = launched
                process = launched.process
                record.started(process.pid, self._clock())
                self._changed()
                if self._stopping.is_set():  # stop() signalled the others while this started
                    _send(process, signal.SIGTERM)
                returncode = await process.wait()  # reaps it
                del self.current[index]
                if self._stopping.is_set():
                    record.pid = None
                    cause = describe_exit(returncode)
                    logger.info("%s (pid %d) stopped: %s", record.name, process.pid, cause)
                    return
                now = self._clock()
                ran_s = now - record.started_at if record.started_at is not None else 0.0
                decision = record.exited(describe_exit(returncode), now)
                self._log_exit(record, launched, ran_s, decision)
                self._changed()
            if isinstance(decision, GiveUp):
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), decision.delay_s)

    def _log_exit(
        self, record: AgentRecord, launched: LaunchedAgent, ran_s: float, decision: Restart | GiveUp
    ) -> None:
        tail = exit_tail(read_run_output(record.log_file, launched.log_offset))
        logger.log(
            logging.ERROR if isinstance(decision, GiveUp) else logging.WARNING,
            "%s (pid %d) %s after %.1f s; %s.%s",
            record.name,
            launched.process.pid,
            record.last_exit,
            ran_s,
            _next(decision),
            _quoted(record.log_file, tail),
        )


def _next(decision: Restart | GiveUp) -> str:
    if isinstance(decision, GiveUp):
        return str(decision)
    return f"restarting in {decision.delay_s:g} s"


def _quoted(path: Path, lines: Sequence[str]) -> str:
    if not lines:
        return f" {path} has nothing from this run."
    return f" The end of {path}:\n" + "\n".join(f"    {line}" for line in lines)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        name = task.get_name()
        logger.error("%s failed: that agent is no longer supervised", name, exc_info=error)


def _send(process: AgentProcess, signum: int) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)
