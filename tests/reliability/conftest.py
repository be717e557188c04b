from __future__ import annotations

from tests.balancer.conftest import make_cluster, make_module_cluster

__all__ = ["make_cluster", "make_module_cluster"]
