from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from paddler_tui.models import default_model_path
from paddler_tui.protocol.desired_state import AgentDesiredState, ChatTemplate
from paddler_tui.protocol.model_source import AgentDesiredModel, LocalToAgent, NoModel
from tests.agent.balancer_endpoint import BalancerEndpoint
from tests.support.cluster import AgentProcess, cluster_env, greedy_parameters


def desired_state(
    model: AgentDesiredModel | None = None,
    *,
    template: str | None = None,
    **parameters: object,
) -> AgentDesiredState:
    """The default model with :func:`greedy_parameters`."""
    return AgentDesiredState(
        chat_template_override=ChatTemplate(content=template) if template is not None else None,
        inference_parameters=greedy_parameters(**parameters),
        model=model if model is not None else LocalToAgent(value=str(default_model_path())),
        multimodal_projection=NoModel(),
    )


@pytest.fixture
def agent_env(tmp_path: Path) -> dict[str, str]:
    return cluster_env(tmp_path)


@pytest.fixture
async def endpoint() -> AsyncIterator[BalancerEndpoint]:
    async with BalancerEndpoint().running() as running:
        yield running


@pytest.fixture
def start_agent(
    endpoint: BalancerEndpoint, agent_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., AgentProcess]]:
    """Agent processes registering with ``endpoint``, killed when the test ends."""
    started: list[AgentProcess] = []

    def start(slots: int = 4, name: str = "test-agent") -> AgentProcess:
        log = tmp_path / f"agent-{len(started)}.log"
        agent = AgentProcess(endpoint.addr, slots=slots, name=name, log=log, env=agent_env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()
        # Shown by pytest only when the test failed.
        print(agent.log_tail())
