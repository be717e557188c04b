"""``paddler-tui serve``, ``status`` and ``stop``: a balancer with local agents, one command.

The balancer runs in this process and the agents as child processes. ``--detach`` re-runs the
same command as a background session (own process group, output to the log directory) and
returns once its slots are ready; a state file records where it runs for ``status`` and
``stop``.
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

from paddler_tui.paths import log_dir
from paddler_tui.protocol.agent_status import AgentControllerSnapshot
from paddler_tui.protocol.monitor import MonitorAgent, MonitorUpdate
from paddler_tui.server.balancer.balancer import Balancer, BalancerSettings
from paddler_tui.server.balancer.main import (
    StartupError,
    prepare_balancer,
    serve_balancer,
    uvicorn_log_level,
)
from paddler_tui.server.local_agents import LocalAgents, LocalAgentsSpec, desired_state
from paddler_tui.server.process_exit import describe_exit
from paddler_tui.server.serve_state import ServeState, is_alive, remove_state

DETACH_READY_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 10.0
PROGRESS_AFTER_S = 1.0
STATUS_MONITOR_TIMEOUT_S = 3.0


class AgentsFailedError(Exception):
    pass


def _slots_ready(balancer: Balancer, spec: LocalAgentsSpec) -> bool:
    agents = balancer.pool.agents()
    return len(agents) == spec.agents and all(a.slots_total == spec.slots for a in agents)


def ended_agents(agents: LocalAgents) -> list[str]:
    """``agent-1 killed by SIGSEGV; see …/agent-1.log`` for each agent that is gone: the signal
    by name and the log that holds its last words (the TUI shows that log's tail)."""
    return [
        f"agent-{index} {describe_exit(code)}; see {log_dir() / f'agent-{index}.log'}"
        for index, process in enumerate(agents.processes, 1)
        if (code := process.poll()) is not None
    ]


def status_line(balancer: Balancer, settings: BalancerSettings) -> str:
    pool = balancer.pool
    return (
        f"agents {len(pool)} · slots {pool.slots_processing}/{pool.slots_total} busy · "
        f"buffered {balancer.buffer.buffered}/{settings.max_buffered_requests} · "
        f"inference {settings.inference_addr} · management {settings.management_addr}"
    )


async def _wait_until_ready(
    balancer: Balancer, agents: LocalAgents, console: Console | None
) -> None:
    """Until every agent has its slots; a progress bar after a second of waiting."""
    started = time.monotonic()
    progress: Progress | None = None
    task = None
    try:
        while not _slots_ready(balancer, agents.spec):
            if ended := ended_agents(agents):
                raise AgentsFailedError("; ".join(ended))
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
                if total:
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


async def serve_foreground(
    settings: BalancerSettings, spec: LocalAgentsSpec, *, detached: bool, log_level: str
) -> int:
    console = None if detached else Console(stderr=True)
    try:
        balancer, sockets = await prepare_balancer(settings)
    except StartupError as error:
        print(f"paddler-tui serve: {error}", file=sys.stderr)
        return 1
    signalled = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, signalled.set)
    balancer_stopping = asyncio.Event()
    serving = asyncio.create_task(
        serve_balancer(balancer, sockets, balancer_stopping, log_level=uvicorn_log_level(log_level))
    )
    agents = LocalAgents(spec, settings.management_addr, log_dir(), api_key=settings.api_key)
    agents.start()
    state = ServeState(
        pid=os.getpid(),
        inference_addr=str(settings.inference_addr),
        management_addr=str(settings.management_addr),
        compat_openai_addr=str(settings.compat_openai_addr)
        if settings.compat_openai_addr
        else None,
        log_file=str(log_dir() / "serve.log"),
        agent_pids=agents.pids,
    )
    if detached:
        # Recorded before the slots are ready, so `stop` works while the model still loads.
        state.write()
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
            await _show_status(balancer, settings, console, signalled)
        else:
            waiting.cancel()
    except AgentsFailedError as error:
        print(f"paddler-tui serve: {error}", file=sys.stderr)
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
    balancer: Balancer, settings: BalancerSettings, console: Console | None, done: asyncio.Event
) -> None:
    if console is None:
        await done.wait()
        return
    with Live(status_line(balancer, settings), console=console, transient=True) as live:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await done.wait()
            live.update(status_line(balancer, settings))


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


def agent_status_lines(agent: AgentControllerSnapshot, monitored: MonitorAgent | None) -> list[str]:
    """An agent's line in ``status``, and its extra-buffers verdict under it when the monitor
    socket knows one (only paddler-tui agents report it, once a model was loaded)."""
    lines = [
        f"agent {agent.name or agent.id}: {agent.slots_processing}/{agent.slots_total} "
        f"slots busy, {agent.state_application_status}, model {agent.model_path}"
    ]
    if monitored is not None and monitored.extra_buffers is not None:
        verdict = "on" if monitored.extra_buffers else "off"
        reason = monitored.extra_buffers_reason
        lines.append(f"  extra buffers {verdict}" + (f": {reason}" if reason else ""))
    return lines


async def _monitored_agents(management_addr: str, api_key: str | None) -> dict[str, MonitorAgent]:
    """The agents of the monitor socket's first frame by id; none if there is no socket
    (a real Paddler) or it does not answer in time: ``status`` then leaves the verdicts out."""
    from paddler_tui.client.errors import ClientError
    from paddler_tui.client.monitor import monitor_updates

    updates = cast(
        AsyncGenerator[MonitorUpdate, None],
        monitor_updates(management_addr, api_key=api_key, open_timeout=STATUS_MONITOR_TIMEOUT_S),
    )
    try:
        async with asyncio.timeout(STATUS_MONITOR_TIMEOUT_S):
            update = await anext(updates)
    except (ClientError, TimeoutError, StopAsyncIteration):
        return {}
    finally:
        await updates.aclose()
    return {agent.id: agent for agent in update.agents}


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
        monitored = await _monitored_agents(state.management_addr, api_key)
        print(f"paddler-tui serve: running (pid {state.pid}){'' if state.ready else ', starting'}")
        print(f"inference:  http://{state.inference_addr}")
        print(f"management: http://{state.management_addr}")
        if state.compat_openai_addr:
            print(f"openai:     http://{state.compat_openai_addr}/v1")
        print(f"buffered:   {buffered.buffered_requests_current}")
        for agent in agents.agents:
            for line in agent_status_lines(agent, monitored.get(agent.id)):
                print(line)
        return 0

    return asyncio.run(query())
