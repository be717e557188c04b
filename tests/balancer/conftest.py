from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.cluster import Cluster, clusters


@pytest.fixture
def make_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Cluster]]:
    """Clusters for one test, stopped when it ends."""
    with clusters(tmp_path_factory.mktemp) as make:
        yield make


@pytest.fixture(scope="module")
def make_module_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], Cluster]]:
    """Clusters shared by a module's tests, stopped when the module is done."""
    with clusters(tmp_path_factory.mktemp) as make:
        yield make
