from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from paddler_tui.models import default_model_path
from paddler_tui.protocol.desired_state import AgentDesiredState, ChatTemplate
from paddler_tui.protocol.inference_parameters import InferenceParameters
from paddler_tui.protocol.model_source import AgentDesiredModel, LocalToAgent, NoModel
from tests.agent.balancer_endpoint import BalancerEndpoint


def desired_state(
    model: AgentDesiredModel | None = None,
    *,
    template: str | None = None,
    **parameters: object,
) -> AgentDesiredState:
    """The default model with Paddler's defaults, greedy and a small context unless told."""
    merged: dict[str, object] = {"temperature": 0.0, "context_size": 2048}
    merged.update(parameters)
    return AgentDesiredState(
        chat_template_override=ChatTemplate(content=template) if template is not None else None,
        inference_parameters=InferenceParameters.default().model_copy(update=merged),
        model=model if model is not None else LocalToAgent(value=str(default_model_path())),
        multimodal_projection=NoModel(),
    )


class AgentProcess:
    """A real ``paddler-tui agent`` subprocess, stopped by pid at the end of the test."""

    def __init__(
        self, management_addr: str, *, slots: int, name: str, env: dict[str, str], log: Path
    ):
        self.log = log
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paddler_tui",
                "agent",
                "--management-addr",
                management_addr,
                "--slots",
                str(slots),
                "--name",
                name,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: a pipe nobody drains would block the agent once it fills.
            stderr=log.open("w"),
        )

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@pytest.fixture
def agent_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ)
    env["PADDLER_CACHE_DIR"] = str(tmp_path / "cache")
    env["HF_HOME"] = str(tmp_path / "hf")
    yield env


@pytest.fixture
async def endpoint() -> AsyncIterator[BalancerEndpoint]:
    async with BalancerEndpoint().running() as running:
        yield running


@pytest.fixture
def start_agent(
    endpoint: BalancerEndpoint, agent_env: dict[str, str], tmp_path: Path
) -> Iterator[object]:
    started: list[AgentProcess] = []

    def start(slots: int = 4, name: str = "test-agent") -> AgentProcess:
        log = tmp_path / f"agent-{len(started)}.log"
        agent = AgentProcess(endpoint.addr, slots=slots, name=name, env=agent_env, log=log)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        with contextlib.suppress(Exception):
            agent.kill()
        # Shown by pytest only when the test failed.
        print(f"--- {agent.log.name} ---\n{agent.log.read_text()[-5000:]}")
