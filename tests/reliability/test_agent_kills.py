"""An agent SIGKILLed mid-stream, 20 times, while another one serves (issue 8, fault test 1).

Two agents with one slot each, so every pair of concurrent requests lands one on each. In each
round both stream, one agent is killed: its request ends with the 502 envelope, the other one
and a request sent during the outage end with Done on the survivor, no slot stays taken, and the
killed agent, started again, takes a request of the next round.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from websockets.asyncio.client import connect

from paddler_tui.protocol.envelope import ErrorDetails, ErrorEnvelope
from tests.reliability.streams import SocketRequests, is_content, is_done
from tests.support.cluster import Cluster, busy, socket_request, watch_agents

pytestmark = pytest.mark.slow

ROUNDS = 20
TOKENS = 24
VICTIM_TOKENS = 4000
AGENT_GONE = ErrorDetails(code=502, description="Agent controller connection closed")
NAMES = ("agent-1", "agent-2")


async def test_twenty_agent_kills_mid_stream_lose_no_request_and_no_slot(
    make_cluster: Callable[[str], Cluster],
) -> None:
    cluster = make_cluster("kills").start(
        "--inference-item-timeout", "30000", agents=2, slots=1, names=NAMES
    )
    async with (
        watch_agents(cluster.b) as agents,
        connect(cluster.b.inference_socket_url, additional_headers=cluster.b.headers) as socket,
    ):
        requests = SocketRequests(socket)
        for round_number in range(ROUNDS):
            pair = [f"r{round_number}-a", f"r{round_number}-b"]
            victim_request, survivor_request = pair
            # The victim asks for more than it can stream before it dies, however loaded the
            # machine; the survivor's short answer may end before or after the kill.
            await socket.send(socket_request(victim_request, VICTIM_TOKENS))
            await requests.until_streaming(victim_request)
            await socket.send(socket_request(survivor_request, TOKENS))
            await requests.until_streaming(survivor_request)
            # The restarted agent is used again: every round spreads over both agents.
            assert {requests.served_by(r) for r in pair} == set(NAMES)

            victim_name = requests.served_by(victim_request)
            assert victim_name is not None
            cluster.agent_named(victim_name).kill()
            during_outage = f"r{round_number}-c"
            await socket.send(socket_request(during_outage, 4))

            await requests.until_ended(*pair, during_outage)
            victim_messages = requests.messages[victim_request]
            assert victim_messages[-1] == ErrorEnvelope(request_id=victim_request, error=AGENT_GONE)
            assert all(is_content(m) for m in victim_messages[:-1])
            for request_id in (survivor_request, during_outage):
                assert is_done(requests.last(request_id)), requests.messages[request_id]
            assert requests.served_by(during_outage) != victim_name

            cluster.agents.remove(cluster.agent_named(victim_name))
            cluster.start_agent(slots=1, name=victim_name)
            await agents.until(
                lambda s: (
                    len(s.agents) == 2
                    and busy(s) == 0
                    and all(a.slots_total == 1 for a in s.agents)
                ),
                timeout=30,
            )
    assert "Traceback" not in cluster.b.log_text()
