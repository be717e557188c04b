"""``paddler-tui serve``, ``status`` and ``stop``: a balancer with local agents, one command.

The balancer runs in this process and the agents as child processes, each restarted when it
exits (:mod:`paddler_tui.server.agent_supervisor`). ``--detach`` re-runs the same command as a
background session (own process group, output to the log directory) and returns once its slots
are ready, or some agent was given up on after a crash loop; a state file records where it runs
for ``status`` and ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from typing import cast

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from paddler_tui.client.monitoring.prompt_cache import (
    agent_prompt_tokens,
    ram_label,
    routed_total,
    share_label,
)
from paddler_tui.paths import log_dir
from paddler_tui.protocol.agent_status import AgentControllerSnapshot
from paddler_tui.protocol.monitor import MonitorAgent, MonitorLocalAgent, MonitorUpdate
from paddler_tui.server.agent_supervisor import AgentRecord
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.main import (
    StartupError,
    prepare_balancer,
    serve_balancer,
    uvicorn_log_level,
)
from paddler_tui.server.local_agents import LocalAgents, LocalAgentsSpec, desired_state
from paddler_tui.server.serve_state import ServeState, is_alive, remove_state

DETACH_READY_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0
PROGRESS_AFTER_S = 1.0
STATUS_MONITOR_TIMEOUT_S = 3.0
# How serve's own messages start in its output, so a reader can pick them out of the log.
SERVE_SAYS = "paddler-tui serve: "


class AgentsFailedError(Exception):
    pass


def _settled(balancer: Balancer, agents: LocalAgents) -> bool:
    """Whether every agent has its slots, or was given up on after a crash loop."""
    ready = {a.name for a in balancer.pool.agents() if a.slots_total == agents.spec.slots}
    return all(
        record.state == "gave_up" or record.name in ready for record in agents.supervisor.records
    )


def _restarting(records: list[AgentRecord]) -> str:
    """``agent-1 killed by SIGSEGV, restarting`` for the agents waiting out a backoff."""
    return "; ".join(
        f"{record.name} {record.last_exit}, restarting"
        for record in records
        if record.state == "restarting"
    )


def status_line(
    balancer: Balancer, settings: BalancerSettings, records: list[AgentRecord] | None = None
) -> str:
    pool = balancer.pool
    line = (
        f"agents {len(pool)} · slots {pool.slots_processing}/{pool.slots_total} busy · "
        f"buffered {balancer.buffer.buffered}/{settings.max_buffered_requests} · "
        f"inference {settings.inference_addr} · management {settings.management_addr}"
    )
    for record in records or []:
        if record.state == "restarting":
            line += f" · {record.name} restarting"
        elif record.state == "gave_up":
            line += f" · {record.name} down (crash loop)"
    return line


async def _wait_until_ready(
    balancer: Balancer, agents: LocalAgents, console: Console | None
) -> None:
    """Until every agent has its slots; a progress bar after a second of waiting."""
    started = time.monotonic()
    progress: Progress | None = None
    task = None
    try:
        while not _settled(balancer, agents):
            issues = [issue for a in balancer.pool.agents() for issue in a.status.issues]
            if issues:
                raise AgentsFailedError(f"the agents report: {issues}")
            if (
                console is not None
                and progress is None
                and (time.monotonic() - started > PROGRESS_AFTER_S)
            ):
                progress = Progress(
                    SpinnerColumn(),
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    console=console,
                    transient=True,
                )
                progress.start()
                task = progress.add_task("loading the model", total=None)
            if progress is not None and task is not None:
                statuses = [a.status for a in balancer.pool.agents()]
                total = sum(s.download_total for s in statuses)
                current = sum(s.download_current for s in statuses)
                loaded = sum(s.slots_total for s in statuses)
                wanted = agents.spec.agents * agents.spec.slots
                if restarting := _restarting(agents.supervisor.records):
                    progress.update(task, description=restarting, total=None)
                elif total:
                    progress.update(task, description="downloading", total=total, completed=current)
                else:
                    progress.update(
                        task, description=f"loading the model ({loaded}/{wanted} slots)"
                    )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await balancer.pool.changed.wait()
    finally:
        if progress is not None:
            progress.stop()


class _SupervisionReport:
    """Called whenever an agent starts, exits or is given up on: wakes the monitor socket's
    subscribers, says once in serve's output why an agent was given up on (the TUI's failed
    start reads it there), and keeps a detached serve's state file current."""

    def __init__(self, balancer: Balancer, state: ServeState | None) -> None:
        self._balancer = balancer
        self._state = state
        self._announced: set[str] = set()
        self.agents: LocalAgents | None = None

    def __call__(self) -> None:
        self._balancer.monitor.changed.notify()
        if self.agents is None:
            return
        failures = [f for record in self.agents.supervisor.records if (f := record.failure)]
        for failure in failures:
            if failure not in self._announced:
                print(f"{SERVE_SAYS}{failure}", file=sys.stderr, flush=True)
                self._announced.add(failure)
        if self._state is not None:
            self._state.agent_pids, self._state.gave_up = self.agents.pids, failures
            self._state.write()


def _serve_state(settings: BalancerSettings) -> ServeState:
    return ServeState(
        pid=os.getpid(),
        inference_addr=str(settings.inference_addr),
        management_addr=str(settings.management_addr),
        compat_openai_addr=str(settings.compat_openai_addr)
        if settings.compat_openai_addr
        else None,
        log_file=str(log_dir() / "serve.log"),
    )


async def serve_foreground(
    settings: BalancerSettings, spec: LocalAgentsSpec, *, detached: bool, log_level: str
) -> int:
    console = None if detached else Console(stderr=True)
    try:
        balancer, sockets = await prepare_balancer(settings)
    except StartupError as error:
        print(f"paddler-tui serve: {error}", file=sys.stderr)
        return 1
    balancer_stopping = asyncio.Event()
    serving = asyncio.create_task(
        serve_balancer(balancer, sockets, balancer_stopping, log_level=uvicorn_log_level(log_level))
    )
    state = _serve_state(settings)
    report = _SupervisionReport(balancer, state if detached else None)
    agents = LocalAgents(
        spec, settings.management_addr, log_dir(), api_key=settings.api_key, on_change=report
    )
    report.agents = agents
    balancer.local_agents = agents.supervisor.snapshot
    signalled = asyncio.Event()

    def on_signal() -> None:
        # The agents got it too when it came from the terminal: their exits are no crashes.
        agents.supervisor.begin_stop()
        signalled.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    if detached:
        # Recorded before the slots are ready, so `stop` works while the model still loads.
        state.write()
    agents.start()
    exit_code = 0
    try:
        await balancer.cluster.store(desired_state(spec))
        waiting = asyncio.create_task(_wait_until_ready(balancer, agents, console))
        signal_wait = asyncio.create_task(signalled.wait())
        await asyncio.wait({waiting, signal_wait}, return_when=asyncio.FIRST_COMPLETED)
        signal_wait.cancel()
        if waiting.done():
            waiting.result()
            print(_addresses(settings), flush=True)
            if detached:
                state.ready = True
                state.write()
            await _show_status(balancer, settings, agents, console, signalled)
        else:
            waiting.cancel()
    except AgentsFailedError as error:
        print(f"{SERVE_SAYS}{error}", file=sys.stderr)
        exit_code = 1
    finally:
        await agents.stop()
        balancer_stopping.set()
        await serving
        if detached:
            remove_state()
    return exit_code


def _addresses(settings: BalancerSettings) -> str:
    lines = [
        f"inference:  http://{settings.inference_addr}",
        f"management: http://{settings.management_addr}",
    ]
    if settings.compat_openai_addr is not None:
        lines.append(f"openai:     http://{settings.compat_openai_addr}/v1")
    return "\n".join(lines)


async def _show_status(
    balancer: Balancer,
    settings: BalancerSettings,
    agents: LocalAgents,
    console: Console | None,
    done: asyncio.Event,
) -> None:
    if console is None:
        await done.wait()
        return
    records = agents.supervisor.records
    with Live(status_line(balancer, settings, records), console=console, transient=True) as live:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await done.wait()
            live.update(status_line(balancer, settings, records))


def run_serve(
    settings: BalancerSettings,
    spec: LocalAgentsSpec,
    *,
    detach: bool,
    detached_child: bool,
    argv: Sequence[str],
    log_level: str,
) -> int:
    # A native crash prints every thread's Python stack to stderr (the log), never nothing.
    faulthandler.enable()
    if detach:
        return _detach(argv)
    return asyncio.run(
        serve_foreground(settings, spec, detached=detached_child, log_level=log_level)
    )


def _detach(argv: Sequence[str]) -> int:
    running = ServeState.read()
    if running is not None and is_alive(running.pid):
        print(
            f"paddler-tui serve is already running (pid {running.pid}, inference "
            f"{running.inference_addr}); `paddler-tui stop` stops it",
            file=sys.stderr,
        )
        return 1
    remove_state()
    log_file = log_dir() / "serve.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "paddler_tui", *_without_detach(argv), "--detached-child"]
    with log_file.open("ab") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + DETACH_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(
                f"paddler-tui serve: the background services exited ({child.returncode}); "
                f"see {log_file}",
                file=sys.stderr,
            )
            return 1
        state = ServeState.read()
        if state is not None and state.pid == child.pid and state.ready:
            print(f"paddler-tui serve: running in the background (pid {child.pid})")
            print(f"inference:  http://{state.inference_addr}")
            print(f"management: http://{state.management_addr}")
            if state.compat_openai_addr:
                print(f"openai:     http://{state.compat_openai_addr}/v1")
            print(f"logs:       {log_file}")
            # Running, but without these agents: the balancer and the others serve on.
            for failure in state.gave_up:
                print(f"{SERVE_SAYS}{failure}", file=sys.stderr)
            return 0
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGTERM)
    print(f"paddler-tui serve: not ready after {DETACH_READY_TIMEOUT_S:.0f} s", file=sys.stderr)
    return 1


def _without_detach(argv: Sequence[str]) -> list[str]:
    return [argument for argument in argv if argument != "--detach"]


def run_stop() -> int:
    state = ServeState.read()
    if state is None or not is_alive(state.pid):
        remove_state()
        print("paddler-tui serve is not running")
        return 0
    with contextlib.suppress(ProcessLookupError):
        os.killpg(state.pid, signal.SIGTERM)
    pids = [state.pid, *state.agent_pids]
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(is_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in pids if is_alive(pid)]
    for pid in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    remove_state()
    print(f"paddler-tui serve stopped (pid {state.pid})")
    return 0


def agent_status_lines(
    agent: AgentControllerSnapshot,
    monitored: MonitorAgent | None,
    local: MonitorLocalAgent | None = None,
) -> list[str]:
    """An agent's line in ``status``, its extra-buffers verdict under it when the monitor
    socket knows one (only paddler-tui agents report it, once a model was loaded), its prompt
    cache hits and routing once the balancer sent it a request, what its prompt cache in RAM
    keeps once it loaded a model, and its restarts when it is a local agent that has had any."""
    lines = [
        f"agent {agent.name or agent.id}: {agent.slots_processing}/{agent.slots_total} "
        f"slots busy, {agent.state_application_status}, model {agent.model_path}"
    ]
    if monitored is not None and monitored.extra_buffers is not None:
        verdict = "on" if monitored.extra_buffers else "off"
        reason = monitored.extra_buffers_reason
        lines.append(f"  extra buffers {verdict}" + (f": {reason}" if reason else ""))
    if monitored is not None and (monitored.prompt_tokens or routed_total(monitored.routed)):
        lines.append(f"  {_prompt_cache(monitored)}")
    if monitored is not None and monitored.prompt_cache_ram is not None:
        lines.append(f"  prompt cache in RAM: {ram_label(monitored.prompt_cache_ram)}")
    if local is not None and local.last_exit is not None:
        lines.append(f"  {_restarts(local)}")
    return lines


def local_agent_line(local: MonitorLocalAgent) -> str:
    """``status``'s line for a local agent that is not registered with the balancer now."""
    if local.state == "gave_up":
        doing = "down, not restarted after a crash loop"
    elif local.state == "restarting":
        doing = "restarting"
        if local.next_restart_in_ms is not None:
            doing += f" in {local.next_restart_in_ms / 1000:.1f} s"
    else:
        doing = "starting" + (f" (pid {local.pid})" if local.pid is not None else "")
    line = f"agent {local.name}: {doing}"
    if local.last_exit is not None:
        line += f"; {_restarts(local)}"
    if local.state == "gave_up" and local.log_file:
        line += f"; see {local.log_file}"
    return line


def _prompt_cache(agent: MonitorAgent) -> str:
    tokens, routed = agent_prompt_tokens(agent), agent.routed
    return (
        f"prompt cache: {tokens.cached}/{tokens.prompt} prompt tokens ({share_label(tokens)}); "
        f"routed: {routed.prefix_hit} prefix hit, {routed.fallback} fallback, "
        f"{routed.least_busy} least busy"
    )


def _restarts(local: MonitorLocalAgent) -> str:
    return f"restarts {local.restarts}, last exit: {local.last_exit}"


async def _monitor_frame(management_addr: str, api_key: str | None) -> MonitorUpdate | None:
    """The monitor socket's first frame; None if there is no socket (a real Paddler) or it does
    not answer in time: ``status`` then leaves out what only the socket says."""
    from paddler_tui.client.errors import ClientError
    from paddler_tui.client.monitor import monitor_updates

    updates = cast(
        AsyncGenerator[MonitorUpdate, None],
        monitor_updates(management_addr, api_key=api_key, open_timeout=STATUS_MONITOR_TIMEOUT_S),
    )
    try:
        async with asyncio.timeout(STATUS_MONITOR_TIMEOUT_S):
            return await anext(updates)
    except (ClientError, TimeoutError, StopAsyncIteration):
        return None
    finally:
        await updates.aclose()


def run_status(*, api_key: str | None) -> int:
    state = ServeState.read()
    if state is None or not is_alive(state.pid):
        print("paddler-tui serve is not running")
        return 1
    from paddler_tui.client.errors import ClientError
    from paddler_tui.client.management import ManagementClient

    async def query() -> int:
        client = ManagementClient(state.management_addr, api_key=api_key)
        try:
            agents = await client.agents()
            buffered = await client.buffered_requests()
        except ClientError as error:
            print(f"paddler-tui serve (pid {state.pid}) does not answer: {error}")
            return 1
        finally:
            await client.aclose()
        frame = await _monitor_frame(state.management_addr, api_key)
        monitored = {agent.id: agent for agent in frame.agents} if frame else {}
        local = {agent.name: agent for agent in frame.local_agents} if frame else {}
        print(f"paddler-tui serve: running (pid {state.pid}){'' if state.ready else ', starting'}")
        print(f"inference:  http://{state.inference_addr}")
        print(f"management: http://{state.management_addr}")
        if state.compat_openai_addr:
            print(f"openai:     http://{state.compat_openai_addr}/v1")
        print(f"buffered:   {buffered.buffered_requests_current}")
        registered: set[str | None] = set()
        for agent in agents.agents:
            registered.add(agent.name)
            for line in agent_status_lines(
                agent, monitored.get(agent.id), local.get(agent.name or "")
            ):
                print(line)
        for name, supervised in local.items():
            if name not in registered:
                print(local_agent_line(supervised))
        if not local:
            # No monitor socket to ask: the state file still tells of a crash loop.
            for failure in state.gave_up:
                print(f"agent {failure}")
        return 0

    return asyncio.run(query())
