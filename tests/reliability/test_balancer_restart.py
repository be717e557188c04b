"""The balancer killed and started again while its agents run (issue 8, fault test 2).

The desired state lives in a state file, so the new balancer hands the agents the state they
already run: they re-register within 2 s of it answering, with their slots ready from their very
first report (a reload would show slots_total 0 while loading), and serve at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from paddler_tui.protocol.agent_status import AgentControllerPoolSnapshot
from tests.reliability.streams import SocketRequests, is_done
from tests.support.cluster import Cluster, socket_request, watch_agents

pytestmark = pytest.mark.slow

REREGISTER_S = 2.0


def ready(snapshot: AgentControllerPoolSnapshot) -> bool:
    return all(
        agent.slots_total == 1 and agent.state_application_status == "Applied"
        for agent in snapshot.agents
    )


async def test_agents_reregister_within_two_seconds_without_reloading(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("restart")
    state_file = cluster.directory / "state.json"
    cluster.start("--state-database", f"file://{state_file}", agents=2, slots=1)
    cluster.b.kill()
    cluster.restart_balancer()
    loop = asyncio.get_running_loop()
    healthy_at = loop.time()
    async with watch_agents(cluster.b) as agents:
        await agents.until(lambda s: len(s.agents) == 2, timeout=REREGISTER_S)
        assert loop.time() - healthy_at <= REREGISTER_S
        async with connect(
            cluster.b.inference_socket_url, additional_headers=cluster.b.headers
        ) as socket:
            requests = SocketRequests(socket)
            for request_id in ("after-1", "after-2"):
                await socket.send(socket_request(request_id, 4))
            await requests.until_ended("after-1", "after-2")
        assert all(is_done(requests.last(r)) for r in ("after-1", "after-2"))
        assert {requests.served_by(r) for r in ("after-1", "after-2")} == {"agent-1", "agent-2"}
    # Every snapshot since the agents came back shows them ready: no drain, no load.
    assert all(ready(snapshot) for snapshot in agents.snapshots)
