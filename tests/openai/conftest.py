"""Real clusters for the OpenAI service: a balancer subprocess and agents with the default model.

Each cluster is module-scoped (the model loads once per module) and sync, so tests drive it with
the official sync ``openai`` client. Processes log to files under the test's temporary directory
and are stopped by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from paddler_tui.client.management import ManagementClient
from paddler_tui.models import default_model_path
from paddler_tui.protocol.desired_state import BalancerDesiredState
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.model_source import LocalToAgent

STARTUP_S = 20.0
MODEL_READY_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def desired_state(**parameters: object) -> BalancerDesiredState:
    """The default model, greedy, with a small context unless told otherwise."""
    merged: dict[str, object] = {"temperature": 0.0, "context_size": 2048}
    merged.update(parameters)
    return BalancerDesiredState.default().model_copy(
        update={
            "model": LocalToAgent(value=str(default_model_path())),
            "inference_parameters": InferenceParameters.default().model_copy(update=merged),
        }
    )


def _spawn(arguments: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "paddler_tui", *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        # A file, not a pipe: a pipe nobody drains would block the process once it fills.
        stderr=log.open("w"),
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Cluster:
    directory: Path
    env: dict[str, str]
    inference_addr: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    management_addr: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    openai_addr: str = field(default_factory=lambda: f"127.0.0.1:{free_port()}")
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def openai_url(self) -> str:
        return f"http://{self.openai_addr}"

    def client(self) -> openai.OpenAI:
        # No retries: a 429 or 504 must reach the test, not be retried away.
        return openai.OpenAI(base_url=f"{self.openai_url}/v1", api_key="unused", max_retries=0)

    def start_balancer(self, *flags: str) -> None:
        log = self.directory / "balancer.log"
        arguments = [
            "balancer",
            "--inference-addr",
            self.inference_addr,
            "--management-addr",
            self.management_addr,
            "--compat-openai-addr",
            self.openai_addr,
            *flags,
        ]
        self._track(_spawn(arguments, log, self.env), log)
        deadline = time.monotonic() + STARTUP_S
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.openai_url}/health", timeout=1).status_code == 200:
                    return
            if self.processes[-1].poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"the balancer did not start:\n{log.read_text()}")

    def start_agent(self, *, slots: int) -> None:
        log = self.directory / f"agent-{len(self.logs)}.log"
        arguments = ["agent", "--management-addr", self.management_addr, "--slots", str(slots)]
        self._track(_spawn(arguments, log, self.env), log)

    def put_state(self, state: BalancerDesiredState) -> None:
        asyncio.run(self._management(lambda client: client.put_desired_state(state)))

    def wait_for_slots(self, total: int) -> None:
        """Until the agents report ``total`` slots, watched on the agents stream."""

        async def watch(client: ManagementClient) -> None:
            async with asyncio.timeout(MODEL_READY_S):
                async for snapshot in client.agents_stream():
                    if sum(agent.slots_total for agent in snapshot.agents) >= total:
                        return

        try:
            asyncio.run(self._management(watch))
        except TimeoutError:
            raise RuntimeError(f"the agents did not get ready:\n{self.dump_logs()}") from None

    async def buffered_reaches(self, count: int, timeout: float = 5.0) -> None:
        """Until the buffer holds ``count`` requests, watched on the buffered requests stream."""
        client = ManagementClient(self.management_addr)
        try:
            async with asyncio.timeout(timeout):
                async for snapshot in client.buffered_requests_stream():
                    if snapshot.buffered_requests_current == count:
                        return
        finally:
            await client.aclose()

    def stop(self) -> None:
        for process in reversed(self.processes):
            _stop(process)

    def dump_logs(self) -> str:
        return "\n".join(f"--- {log.name} ---\n{log.read_text()[-4000:]}" for log in self.logs)

    def _track(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.processes.append(process)
        self.logs.append(log)

    async def _management(self, work: Callable[[ManagementClient], Awaitable[None]]) -> None:
        client = ManagementClient(self.management_addr)
        try:
            await work(client)
        finally:
            await client.aclose()


@pytest.fixture(scope="module")
def cluster_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], Cluster]]:
    """Makes clusters that are all stopped when the module's tests are done."""
    made: list[Cluster] = []

    def make(name: str) -> Cluster:
        directory = tmp_path_factory.mktemp(name)
        env = dict(os.environ)
        env["PADDLER_CACHE_DIR"] = str(directory / "cache")
        env["HF_HOME"] = str(directory / "hf")
        cluster = Cluster(directory, env)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()
        # Shown by pytest only when a test failed.
        print(cluster.dump_logs())


@pytest.fixture(scope="module")
def cluster(cluster_factory: Callable[[str], Cluster]) -> Cluster:
    """One balancer and one agent with 2 slots, serving the default model greedily."""
    cluster = cluster_factory("cluster")
    cluster.start_balancer()
    cluster.put_state(desired_state())
    cluster.start_agent(slots=2)
    cluster.wait_for_slots(2)
    return cluster
