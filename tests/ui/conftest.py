from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.balancer.conftest import make_module_cluster
from tests.support.fake_balancer import FakeBalancer, FakeScript, desired_state

__all__ = ["make_module_cluster"]


@pytest.fixture
def fake() -> Iterator[FakeBalancer]:
    """A fake balancer with two agents and embeddings on."""
    with FakeBalancer(FakeScript(desired_state=desired_state(enable_embeddings=True))) as running:
        yield running
