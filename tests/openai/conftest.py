"""Real clusters for the OpenAI service: a balancer with ``--compat-openai-addr`` and agents.

Each cluster is module-scoped (the model loads once per module) and sync, so tests drive it with
the official sync ``openai`` client.
"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from tests.balancer.conftest import make_module_cluster
from tests.support.cluster import Cluster, greedy_state

__all__ = ["make_module_cluster"]


def openai_client(cluster: Cluster) -> openai.OpenAI:
    # No retries: a 429 or 504 must reach the test, not be retried away.
    return openai.OpenAI(base_url=f"{cluster.b.openai_url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def cluster(make_module_cluster: Callable[[str], Cluster]) -> Cluster:
    """One balancer and one agent with 2 slots, serving the default model greedily."""
    return make_module_cluster("cluster").start(
        openai=True, agents=1, slots=2, state=greedy_state()
    )
