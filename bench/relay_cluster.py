"""A real balancer with the token source registered as its only agent."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import cluster
from tests.support.cluster import BalancerProcess, Cluster
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parent.parent
REGISTER_S = 20.0


@dataclass(frozen=True)
class RelayCluster:
    cluster: Cluster
    source: subprocess.Popen[bytes]
    direct_port: int

    @property
    def balancer(self) -> BalancerProcess:
        return self.cluster.b

    @property
    def balancer_url(self) -> str:
        return self.balancer.inference_socket_url

    @property
    def direct_url(self) -> str:
        return f"ws://127.0.0.1:{self.direct_port}"


@contextlib.contextmanager
def relay_cluster(*balancer_flags: str) -> Iterator[RelayCluster]:
    with cluster() as made:
        made.start_balancer("--inference-item-timeout", "60000", *balancer_flags)
        direct_port = free_port()
        source = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.token_source",
                "--management-addr",
                made.b.management_addr,
                "--direct-port",
                str(direct_port),
            ],
            cwd=REPO,
            stderr=(made.directory / "token-source.log").open("wb"),
        )
        try:
            deadline = time.monotonic() + REGISTER_S
            while not made.agents_snapshot().agents:
                if source.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        (made.directory / "token-source.log").read_text(errors="replace")
                    )
                time.sleep(0.05)
            yield RelayCluster(made, source, direct_port)
        finally:
            source.terminate()
            source.wait(10)
